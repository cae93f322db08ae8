//! Packing whole lines into datagrams no larger than an output's `mtu` (sans-I/O).
//!
//! The rule: a datagram is one or more whole lines, each with its final `\n`, and the
//! datagram (newlines included) is at most `mtu` bytes. A line is never split, since
//! the receiver parses each datagram on its own; a line that alone exceeds `mtu` cannot
//! be sent to that output at all. Packing is greedy: a datagram is closed only when the
//! next line does not fit in it.
//!
//! Finished datagrams collect back to back in one buffer, so the sender hands many of
//! them to the kernel in one `sendmmsg` and nothing is allocated per datagram once the
//! buffer has grown to its working size.

/// Result of offering one line to a [`Packer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The line is in the datagram being built.
    Packed,
    /// The line (with its `\n`) is longer than `mtu`: drop it and count it.
    TooLong,
}

/// Builds datagrams; finished ones wait in order until [`Packer::clear_finished`].
#[derive(Debug)]
pub struct Packer {
    mtu: usize,
    /// Finished datagrams back to back, then the one being built (never more than
    /// `mtu` bytes, starting at `open_start`).
    buf: Vec<u8>,
    /// End in `buf` and line count of each finished datagram, in order.
    finished: Vec<(usize, usize)>,
    open_start: usize,
    /// Lines in the datagram being built.
    open_lines: usize,
}

impl Packer {
    pub fn new(mtu: usize) -> Packer {
        Packer {
            mtu,
            buf: Vec::with_capacity(mtu),
            finished: Vec::new(),
            open_start: 0,
            open_lines: 0,
        }
    }

    /// Add `line` (ending in `\n`), first finishing the datagram being built if the
    /// line does not fit in it.
    pub fn push(&mut self, line: &[u8]) -> Push {
        if line.len() > self.mtu {
            return Push::TooLong;
        }
        if self.buf.len() - self.open_start + line.len() > self.mtu {
            self.finish();
        }
        self.buf.extend_from_slice(line);
        self.open_lines += 1;
        Push::Packed
    }

    /// Finish the datagram being built, if it holds anything.
    pub fn finish(&mut self) {
        if self.open_lines > 0 {
            self.finished.push((self.buf.len(), self.open_lines));
            self.open_start = self.buf.len();
            self.open_lines = 0;
        }
    }

    /// Finished datagrams waiting.
    pub fn finished(&self) -> usize {
        self.finished.len()
    }

    /// Finished datagram `i` (in packing order) and the number of lines in it.
    pub fn datagram(&self, i: usize) -> (&[u8], usize) {
        let start = match i {
            0 => 0,
            _ => self.finished[i - 1].0,
        };
        let (end, lines) = self.finished[i];
        (&self.buf[start..end], lines)
    }

    /// Forget the finished datagrams (they were sent or dropped); the one being built
    /// stays.
    pub fn clear_finished(&mut self) {
        self.buf.drain(..self.open_start);
        self.finished.clear();
        self.open_start = 0;
    }

    /// Lines in the datagram being built.
    pub fn pending_lines(&self) -> usize {
        self.open_lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pack `lines` and return the datagrams with their line counts, and how many lines
    /// were too long. Finished datagrams are taken off now and then, as the sender does.
    fn pack(mtu: usize, lines: &[Vec<u8>]) -> (Vec<(Vec<u8>, usize)>, usize) {
        let mut out = Vec::new();
        let mut packer = Packer::new(mtu);
        let mut too_long = 0;
        let mut take = |p: &mut Packer| {
            for i in 0..p.finished() {
                let (d, n) = p.datagram(i);
                out.push((d.to_vec(), n));
            }
            p.clear_finished();
        };
        for (i, line) in lines.iter().enumerate() {
            if packer.push(line) == Push::TooLong {
                too_long += 1;
            }
            if i % 7 == 3 {
                take(&mut packer);
            }
        }
        packer.finish();
        assert_eq!(packer.pending_lines(), 0);
        take(&mut packer);
        (out, too_long)
    }

    /// The packing as it was done one datagram at a time before datagrams were batched:
    /// the batched packer must give exactly the same datagrams.
    fn pack_one_at_a_time(mtu: usize, lines: &[Vec<u8>]) -> Vec<(Vec<u8>, usize)> {
        let mut out = Vec::new();
        let mut current = (Vec::new(), 0);
        for line in lines.iter().filter(|l| l.len() <= mtu) {
            if current.0.len() + line.len() > mtu {
                out.push(std::mem::take(&mut current));
            }
            current.0.extend_from_slice(line);
            current.1 += 1;
        }
        if current.1 > 0 {
            out.push(current);
        }
        out
    }

    fn line(len: usize) -> Vec<u8> {
        let mut l = vec![b'x'; len - 1];
        l.push(b'\n');
        l
    }

    #[test]
    fn lines_are_packed_greedily_up_to_the_mtu() {
        let lines = [line(40), line(40), line(20), line(30)];
        let (datagrams, too_long) = pack(100, &lines);
        assert_eq!(too_long, 0);
        let sizes: Vec<_> = datagrams.iter().map(|(d, n)| (d.len(), *n)).collect();
        assert_eq!(sizes, [(100, 3), (30, 1)]);
    }

    #[test]
    fn a_line_of_exactly_mtu_bytes_fits_one_byte_more_does_not() {
        let (datagrams, too_long) = pack(64, &[line(64), line(65), line(10)]);
        assert_eq!(too_long, 1);
        assert_eq!(datagrams, [(line(64), 1), (line(10), 1)]);
    }

    #[test]
    fn an_over_long_line_does_not_cost_its_neighbours() {
        let lines = [line(10), line(500), line(10)];
        let (datagrams, too_long) = pack(64, &lines);
        assert_eq!(too_long, 1);
        assert_eq!(datagrams, [([line(10), line(10)].concat(), 1 + 1)]);
    }

    #[test]
    fn the_open_datagram_survives_clearing_the_finished_ones() {
        let mut p = Packer::new(100);
        p.push(&line(60));
        p.push(&line(60));
        assert_eq!((p.finished(), p.pending_lines()), (1, 1));
        p.clear_finished();
        assert_eq!((p.finished(), p.pending_lines()), (0, 1));
        p.push(&line(30));
        p.finish();
        assert_eq!(p.datagram(0), (&[line(60), line(30)].concat()[..], 2));
    }

    proptest! {
        #[test]
        fn datagrams_fit_and_carry_every_line_in_order(
            mtu in 64usize..2048,
            lens in proptest::collection::vec(1usize..3000, 0..200),
        ) {
            let lines: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                // Distinct content so a reordering or a duplicate would show.
                .map(|(i, &len)| {
                    let mut l: Vec<u8> = (0..len - 1).map(|j| b'a' + ((i + j) % 26) as u8).collect();
                    l.push(b'\n');
                    l
                })
                .collect();
            let (datagrams, too_long) = pack(mtu, &lines);
            prop_assert_eq!(&datagrams, &pack_one_at_a_time(mtu, &lines));
            let fitting: Vec<&Vec<u8>> = lines.iter().filter(|l| l.len() <= mtu).collect();
            prop_assert_eq!(too_long, lines.len() - fitting.len());
            let mut total_lines = 0;
            for (d, n) in &datagrams {
                prop_assert!(!d.is_empty() && d.len() <= mtu);
                prop_assert_eq!(d.last(), Some(&b'\n'));
                total_lines += n;
            }
            prop_assert_eq!(total_lines, fitting.len());
            let sent: Vec<u8> = datagrams.iter().flat_map(|(d, _)| d.clone()).collect();
            let expected: Vec<u8> = fitting.iter().flat_map(|l| l.to_vec()).collect();
            prop_assert_eq!(sent, expected);
            // Greedy: no datagram could have taken the first line of the next one.
            for pair in datagrams.windows(2) {
                let next_first = pair[1].0.iter().position(|&b| b == b'\n').unwrap() + 1;
                prop_assert!(pair[0].0.len() + next_first > mtu);
            }
        }
    }
}
