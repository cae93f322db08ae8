//! Line splitting and marker extraction for the sink.
//!
//! The sink sees whatever the relay forwards, byte for byte, so it splits lines the way
//! InfluxDB does: a newline inside a double-quoted string field does not end the line.
//! Every generated line carries a `gen=<run id>` tag and the fields `stream=<n>i` and
//! `seq=<n>i`; [`marker`] finds them without parsing the rest of the line.

use std::sync::LazyLock;

use memchr::{memchr2, memchr3, memmem};

/// Calls `f` for every line of `body` that is neither blank nor a `#` comment, with the
/// trailing `\r` (if any) removed. Returns the number of such lines.
pub fn for_each_line(body: &[u8], mut f: impl FnMut(&[u8])) -> u64 {
    let mut count = 0;
    let mut pos = 0;
    while pos < body.len() {
        let end = line_end(body, pos);
        let mut line = &body[pos..end];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if !line.is_empty() && line[0] != b'#' && !line.iter().all(|&b| b == b' ' || b == b'\t') {
            count += 1;
            f(line);
        }
        pos = end + 1;
    }
    count
}

/// Index of the newline that ends the line starting at `start`, or `buf.len()`.
fn line_end(buf: &[u8], start: usize) -> usize {
    // Measurement and tags: `\` escapes the next byte, the first bare space ends them.
    let mut i = start;
    loop {
        let Some(off) = memchr3(b' ', b'\n', b'\\', &buf[i..]) else {
            return buf.len();
        };
        let j = i + off;
        match buf[j] {
            b'\n' => return j,
            b'\\' => {
                if buf.get(j + 1) == Some(&b'\n') {
                    return j + 1;
                }
                i = j + 2;
                if i >= buf.len() {
                    return buf.len();
                }
            }
            _ => {
                i = j + 1;
                break;
            }
        }
    }
    // Fields and timestamp: only quotes matter, and inside a string only `\"`/`\\`.
    let mut in_string = false;
    loop {
        if i >= buf.len() {
            return buf.len();
        }
        if in_string {
            let Some(off) = memchr2(b'"', b'\\', &buf[i..]) else {
                return buf.len();
            };
            let j = i + off;
            if buf[j] == b'\\' {
                i = j + 2;
            } else {
                in_string = false;
                i = j + 1;
            }
        } else {
            let Some(off) = memchr2(b'"', b'\n', &buf[i..]) else {
                return buf.len();
            };
            let j = i + off;
            if buf[j] == b'\n' {
                return j;
            }
            in_string = true;
            i = j + 1;
        }
    }
}

/// The loadtest markers of one generated line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker<'a> {
    /// Value of the `gen` tag: the run id.
    pub run: &'a [u8],
    /// Value of the `stream` field: one generator connection or UDP sender.
    pub stream: u64,
    /// Value of the `seq` field: position of the line within its stream.
    pub seq: u64,
}

/// Finds `gen`, `stream` and `seq` on a line; `None` for lines that lack any of them.
pub fn marker(line: &[u8]) -> Option<Marker<'_>> {
    let key_end = key_section_end(line)?;
    let keys = &line[..key_end];
    let run = gen_tag(keys)?;
    let (mut stream, mut seq) = (None, None);
    let mut i = key_end + 1;
    // Generated lines put `stream` and `seq` first, so this loop usually runs twice.
    while i < line.len() {
        let eq = i + memchr::memchr(b'=', &line[i..])?;
        let key = &line[i..eq];
        let (value, next) = field_value(line, eq + 1);
        match key {
            b"stream" => stream = int_value(value),
            b"seq" => seq = int_value(value),
            _ => {}
        }
        if let (Some(stream), Some(seq)) = (stream, seq) {
            return Some(Marker { run, stream, seq });
        }
        match next {
            Some(n) => i = n,
            None => return None,
        }
    }
    None
}

/// Index of the first unescaped space (the end of measurement and tags).
fn key_section_end(line: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let j = i + memchr2(b' ', b'\\', &line[i..])?;
        if line[j] == b' ' {
            return Some(j);
        }
        i = j + 2;
        if i >= line.len() {
            return None;
        }
    }
}

/// Searcher for the run-id tag, built once: `marker` runs for every line the sink sees.
static GEN_TAG: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b",gen="));

/// The value of the `gen` tag in the measurement-and-tags section.
fn gen_tag(keys: &[u8]) -> Option<&[u8]> {
    let start = GEN_TAG.find(keys)? + b",gen=".len();
    let end = memchr::memchr(b',', &keys[start..]).map_or(keys.len(), |p| start + p);
    Some(&keys[start..end])
}

/// The field value starting at `start` and where the next field key starts (`None` when
/// the field set ends there).
fn field_value(line: &[u8], start: usize) -> (&[u8], Option<usize>) {
    let mut i = start;
    if line.get(i) == Some(&b'"') {
        i += 1;
        while i < line.len() {
            match line[i] {
                b'\\' => i += 2,
                b'"' => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
        let i = i.min(line.len());
        return match line.get(i) {
            Some(b',') => (&line[start..i], Some(i + 1)),
            _ => (&line[start..i], None),
        };
    }
    match memchr2(b',', b' ', &line[i..]) {
        Some(off) => {
            i += off;
            let next = (line[i] == b',').then_some(i + 1);
            (&line[start..i], next)
        }
        None => (&line[start..], None),
    }
}

/// `123i` or `123u` (or a bare `123`) as a u64.
fn int_value(v: &[u8]) -> Option<u64> {
    let digits = v
        .strip_suffix(b"i")
        .or_else(|| v.strip_suffix(b"u"))
        .unwrap_or(v);
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(body: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let n = for_each_line(body, |l| out.push(l.to_vec()));
        assert_eq!(n as usize, out.len());
        out
    }

    #[test]
    fn splits_on_newlines_and_skips_blank_and_comments() {
        let got = lines(b"a x=1\n\n# note\nb x=2\r\n   \nc x=3");
        assert_eq!(
            got,
            vec![b"a x=1".to_vec(), b"b x=2".to_vec(), b"c x=3".to_vec()]
        );
    }

    #[test]
    fn newline_inside_string_field_does_not_end_the_line() {
        let body = b"m s=\"one\ntwo\",x=1 10\nm s=\"esc \\\" q\nx\" 11\nm\\ n,t=\"a x=1\n";
        let got = lines(body);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], b"m s=\"one\ntwo\",x=1 10");
        assert_eq!(got[1], b"m s=\"esc \\\" q\nx\" 11");
        // A quote in a tag value is a literal character, not a string.
        assert_eq!(got[2], b"m\\ n,t=\"a x=1");
    }

    #[test]
    fn finds_markers_anywhere_in_the_field_set() {
        let l = b"cpu,dc=dc-1,gen=r42,host=h stream=7i,seq=123i,v=1.5 1700000000000000000";
        assert_eq!(
            marker(l),
            Some(Marker {
                run: b"r42",
                stream: 7,
                seq: 123
            })
        );
        let l = b"cpu,gen=r1 s=\"a, b=c\",seq=5i,x=true,stream=2i";
        assert_eq!(
            marker(l),
            Some(Marker {
                run: b"r1",
                stream: 2,
                seq: 5
            })
        );
    }

    #[test]
    fn lines_without_markers_are_untagged() {
        assert_eq!(marker(b"cpu,host=a stream=1i,seq=2i"), None);
        assert_eq!(marker(b"cpu,gen=r seq=2i"), None);
        assert_eq!(marker(b"cpu,gen=r stream=x,seq=2i"), None);
        assert_eq!(marker(b"cpu,gen=r"), None);
        assert_eq!(marker(b""), None);
    }
}
