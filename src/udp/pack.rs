//! Packing whole lines into datagrams no larger than an output's `mtu` (sans-I/O).
//!
//! The rule: a datagram is one or more whole lines, each with its final `\n`, and the
//! datagram (newlines included) is at most `mtu` bytes. A line is never split, since
//! the receiver parses each datagram on its own; a line that alone exceeds `mtu` cannot
//! be sent to that output at all.

/// Result of offering one line to a [`Packer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The line is in the datagram being built.
    Packed,
    /// The line (with its `\n`) is longer than `mtu`: drop it and count it.
    TooLong,
}

/// Builds one datagram at a time; full datagrams are handed to the caller's `emit`.
#[derive(Debug)]
pub struct Packer {
    mtu: usize,
    /// The datagram being built: whole lines, never more than `mtu` bytes.
    buf: Vec<u8>,
    /// Lines in `buf`.
    lines: usize,
}

impl Packer {
    pub fn new(mtu: usize) -> Packer {
        Packer {
            mtu,
            buf: Vec::with_capacity(mtu),
            lines: 0,
        }
    }

    /// Add `line` (ending in `\n`), first emitting the current datagram if the line
    /// does not fit in it. `emit` gets the datagram and the number of lines in it.
    pub fn push(&mut self, line: &[u8], emit: &mut impl FnMut(&[u8], usize)) -> Push {
        if line.len() > self.mtu {
            return Push::TooLong;
        }
        if self.buf.len() + line.len() > self.mtu {
            self.flush(emit);
        }
        self.buf.extend_from_slice(line);
        self.lines += 1;
        Push::Packed
    }

    /// Emit the datagram being built, if it holds anything.
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8], usize)) {
        if self.lines > 0 {
            emit(&self.buf, self.lines);
            self.buf.clear();
            self.lines = 0;
        }
    }

    /// Lines waiting in the datagram being built.
    pub fn pending_lines(&self) -> usize {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pack `lines` and return the datagrams and how many lines were too long.
    fn pack(mtu: usize, lines: &[Vec<u8>]) -> (Vec<(Vec<u8>, usize)>, usize) {
        let mut out = Vec::new();
        let mut emit = |d: &[u8], n: usize| out.push((d.to_vec(), n));
        let mut packer = Packer::new(mtu);
        let mut too_long = 0;
        for line in lines {
            if packer.push(line, &mut emit) == Push::TooLong {
                too_long += 1;
            }
        }
        packer.flush(&mut emit);
        assert_eq!(packer.pending_lines(), 0);
        (out, too_long)
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
        assert_eq!(datagrams, [([line(10), line(10)].concat(), 2)]);
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
