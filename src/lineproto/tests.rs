use super::grammar::*;
use super::scan::*;
use super::split::*;
use super::*;
use crate::config::Precision;
use proptest::prelude::*;

fn lines_of(body: &[u8]) -> Vec<(Vec<u8>, usize)> {
    split_lines(body)
        .map(|l| (l.raw.to_vec(), l.number))
        .collect()
}

/// The splitting rules written as the plainest byte-at-a-time state machine, to
/// check the memchr-driven splitter against.
fn reference_split(body: &[u8]) -> Vec<(Vec<u8>, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Lead,
        Comment,
        Key,
        Gap,
        FieldKey,
        ValueStart,
        Value,
        Str,
        StrEscape,
        Tail,
    }
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut number = 1;
    let mut first_number = 1;
    let mut state = S::Lead;
    let mut escape = false; // a backslash in a field key or value is pending
    let mut prev = 0u8;
    for &b in body {
        let mut ends = false;
        match state {
            S::Lead => match b {
                b' ' | b'\t' => {}
                b'#' => state = S::Comment,
                b'\n' => ends = true,
                _ => state = S::Key,
            },
            S::Comment | S::Tail => ends = b == b'\n',
            S::Key => {
                if b == b'\n' {
                    ends = true;
                } else if b == b' ' && prev != b'\\' {
                    state = S::Gap;
                }
            }
            S::Gap => match b {
                b' ' | b'\t' => {}
                b'\n' => ends = true,
                b'\\' => {
                    state = S::FieldKey;
                    escape = true;
                }
                b'=' => state = S::ValueStart,
                _ => state = S::FieldKey,
            },
            S::FieldKey | S::ValueStart | S::Value => {
                if b == b'\n' {
                    ends = true;
                } else if state == S::ValueStart && b == b'"' {
                    state = S::Str;
                } else if escape {
                    escape = false;
                    if state == S::ValueStart {
                        state = S::Value;
                    }
                } else {
                    let in_key = state == S::FieldKey;
                    state = if in_key { S::FieldKey } else { S::Value };
                    match b {
                        b'\\' => escape = true,
                        b' ' => state = S::Tail,
                        b',' => state = S::FieldKey,
                        b'=' if in_key => state = S::ValueStart,
                        _ => {}
                    }
                }
            }
            S::Str => match b {
                b'\\' => state = S::StrEscape,
                b'"' => state = S::Value,
                _ => {}
            },
            S::StrEscape => state = S::Str,
        }
        if b == b'\n' {
            number += 1;
        }
        if ends {
            out.push((std::mem::take(&mut line), first_number));
            first_number = number;
            state = S::Lead;
            escape = false;
            prev = 0;
        } else {
            line.push(b);
            prev = b;
        }
    }
    if !line.is_empty() {
        out.push((line, first_number));
    }
    out
}

fn body_from(alphabet: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), 0..64)
}

const ALPHABET: &[u8] = b"a,= \"\\\n\r#1i.";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn split_lines_matches_reference(body in body_from(ALPHABET)) {
        prop_assert_eq!(lines_of(&body), reference_split(&body));
    }

    #[test]
    fn check_body_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = check_body(&body);
        let mut out = Vec::new();
        stamp_body(&body, 42, &mut out);
    }

    /// Stamping a valid body gives one that needs no rewrite, has the same points,
    /// and is its own stamp.
    #[test]
    fn stamped_body_is_stable(body in body_from(b"m,t=1 v=\"\\\n\r#i.-9 fT\t")) {
        if let Ok(info) = check_body(&body) {
            let mut stamped = Vec::new();
            stamp_body(&body, 7, &mut stamped);
            let again = check_body(&stamped);
            prop_assert_eq!(
                again.clone(),
                Ok(BodyInfo { points: info.points, needs_rewrite: false }),
                "{:?} -> {:?}", String::from_utf8_lossy(&body), String::from_utf8_lossy(&stamped)
            );
            let mut twice = Vec::new();
            stamp_body(&stamped, 8, &mut twice);
            prop_assert_eq!(twice, stamped);
        }
    }
}

/// A line `check_line` accepts: tags, several field types (a string with a newline
/// among them), with or without a timestamp, maybe a `\r`; or a blank or comment.
fn valid_line() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("1.5".to_string()),
        Just("-2e3".to_string()),
        Just("42i".to_string()),
        Just("7u".to_string()),
        Just("t".to_string()),
        Just("false".to_string()),
        Just("\"multi\nline, \\\"quoted\\\"\"".to_string()),
        "\"[a-z ,=]{0,8}\"",
    ];
    let point = (
        "[a-z]{1,6}",
        proptest::collection::vec("[a-z0-9]{1,4}", 0..3),
        proptest::collection::vec(value, 1..4),
        proptest::option::of(-1_000_000i64..1_000_000_000),
        any::<bool>(),
    )
        .prop_map(|(m, tags, fields, ts, cr)| {
            let mut line = m;
            for (i, t) in tags.iter().enumerate() {
                line.push_str(&format!(",t{i}={t}"));
            }
            let fields: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, v)| format!("f{i}={v}"))
                .collect();
            line.push(' ');
            line.push_str(&fields.join(","));
            if let Some(ts) = ts {
                line.push_str(&format!(" {ts}"));
            }
            if cr {
                line.push('\r');
            }
            line
        });
    prop_oneof![
        8 => point,
        1 => Just(String::new()),
        1 => Just("# a comment".to_string()),
    ]
}

proptest! {
    /// The scanner's contract with the forwarding path, on bodies it must accept:
    /// after stamping, every line is a point with a timestamp.
    #[test]
    fn stamped_valid_bodies_have_a_timestamp_on_every_line(
        lines in proptest::collection::vec(valid_line(), 0..12),
    ) {
        let body = lines.join("\n");
        let info = check_body(body.as_bytes());
        prop_assert!(info.is_ok(), "{:?}: {:?}", body, info);
        let info = info.unwrap_or_default();
        let mut stamped = Vec::new();
        stamp_body(body.as_bytes(), 99, &mut stamped);
        let mut points = 0;
        for line in split_lines(&stamped) {
            points += 1;
            prop_assert_eq!(
                check_line(line.text()),
                Ok(LineKind::Point { has_timestamp: true }),
                "{:?}", String::from_utf8_lossy(line.raw)
            );
        }
        prop_assert_eq!(points, info.points);
    }
}

/// What `check_body` must say, worked out from `split_lines` and `check_line`.
fn reference_check_body(body: &[u8]) -> Result<BodyInfo, ParseError> {
    let mut info = BodyInfo::default();
    for line in split_lines(body) {
        let text = line.text();
        let cr = text.len() != line.raw.len();
        match check_line(text) {
            Ok(LineKind::Point { has_timestamp }) => {
                info.points += 1;
                info.needs_rewrite |= cr || !has_timestamp;
            }
            Ok(LineKind::Comment) => info.needs_rewrite = true,
            Ok(LineKind::Blank) => info.needs_rewrite |= cr,
            Err(reason) => {
                return Err(ParseError {
                    line: line.number,
                    reason,
                })
            }
        }
    }
    Ok(info)
}

/// How InfluxDB 1.x cuts a body into lines before parsing them (its own quote
/// tracker, see `check_backend_quoting`), written out independently.
fn backend_split(body: &[u8]) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let (mut fields, mut quoted, mut equals, mut commas) = (false, false, 0, 0);
        let mut i = pos;
        while i < body.len() {
            let b = body[i];
            if b == b'\\' && i + 2 < body.len() {
                i += 2;
                continue;
            }
            fields |= b == b' ';
            if fields && !quoted && b == b'=' {
                equals += 1;
            } else if fields && !quoted && b == b',' {
                commas += 1;
            } else if fields && b == b'"' && equals > commas {
                quoted = !quoted;
            } else if b == b'\n' && !quoted {
                break;
            }
            i += 1;
        }
        lines.push(body[pos..i].to_vec());
        pos = i + 1;
    }
    lines
}

/// The number grammar written out plainly: what `check_line` must accept.
fn number_is_valid(token: &str) -> bool {
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if let Some(int) = token.strip_suffix('i') {
        let magnitude = int.strip_prefix('-').unwrap_or(int);
        return !magnitude.is_empty() && digits(magnitude) && int.parse::<i64>().is_ok();
    }
    if let Some(int) = token.strip_suffix('u') {
        return !int.is_empty() && digits(int) && int.parse::<u64>().is_ok();
    }
    let unsigned = token.strip_prefix('-').unwrap_or(token);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(k) => (&unsigned[..k], Some(&unsigned[k + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mantissa_ok = digits(int) && digits(frac) && int.len() + frac.len() > 0;
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok && unsigned.parse::<f64>().is_ok_and(f64::is_finite)
}

fn one_of(options: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop::sample::select(options).prop_map(str::to_owned)
}

/// Number-like tokens: every shape the grammar tells apart, mostly valid, and near
/// misses.
fn number_token() -> impl Strategy<Value = String> + Clone {
    (
        one_of(&["", "", "", "", "", "", "", "", "-", "-", "-", "+", "--"]),
        prop_oneof![8 => "[0-9]{1,12}", 2 => "[0-9]{0,21}"],
        prop::option::of("\\.[0-9]{0,4}"),
        prop::option::weighted(0.2, "[eE][+-]?[0-9]{0,3}"),
        one_of(&[
            "", "", "", "", "", "", "i", "i", "u", "x", ".", "-", "e", "i2",
        ]),
    )
        .prop_map(|(sign, int, frac, exp, suffix)| {
            format!(
                "{sign}{int}{}{}{suffix}",
                frac.unwrap_or_default(),
                exp.unwrap_or_default()
            )
        })
}

/// Numbers of the shapes clients send.
fn valid_number() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "-?[0-9]{1,12}(\\.[0-9]{1,6})?",
        "-?[0-9]{1,15}i",
        "[0-9]{1,15}u",
        "-?[0-9]\\.[0-9]{1,3}[eE][+-]?[0-9]{1,2}",
        "-?\\.[0-9]{1,3}",
    ]
}

/// Mostly `valid` pieces, sometimes `invalid` ones.
fn mostly(
    valid: &'static [&'static str],
    invalid: &'static [&'static str],
) -> impl Strategy<Value = String> + Clone {
    prop_oneof![30 => one_of(valid), 1 => one_of(invalid)]
}

/// Plausible lines, mostly valid, from pieces that exercise every rule.
fn line_text() -> impl Strategy<Value = String> {
    let measurement = mostly(
        &["m", "cpu", "m\\ x", "m\\,y", "\"q\"", "été", "m=x", "\\ m"],
        &[",m", "", "m\\"],
    );
    let tag = (
        mostly(&["t", "host", "a\\ b", "a\\=b", "\"k\"", "t", "u"], &[""]),
        mostly(
            &["1", "web01", "a\\ b", "a\\,b", "\"v\""],
            &["x=y", "", "a\\\\"],
        ),
    );
    let field_value = prop_oneof![
        6 => valid_number(),
        1 => number_token(),
        3 => one_of(&[
            "t", "true", "F", "FALSE", "\"s\"", "\"a,b c=d\"", "\"x\\\"y\"",
            "\"multi\nline\"", "\"a\r\nb\"", "\"\\\\\"", "\"\"", "\"é\"",
        ]),
        1 => one_of(&["tRUE", "\"open", "", "\"x\"y", "n", "1", "2.5"]),
    ];
    let field = (
        mostly(
            &["v", "usage_idle", "a\\ b", "a\\,b", "a\\=b", "\"f\"", "w"],
            &[""],
        ),
        field_value,
    );
    let timestamp = prop_oneof![
        4 => Just(String::new()),
        4 => one_of(&["1700000000000000000", "-1", "0"]),
        1 => number_token(),
    ];
    (
        one_of(&["", "", "", " ", "\t"]),
        measurement,
        prop::collection::vec(tag, 0..3),
        one_of(&[" ", " ", "  ", " \t"]),
        prop::collection::vec(field, 1..4),
        timestamp,
        mostly(&["", "", "", " ", "\r", " \r"], &["\t", "\r\r"]),
    )
        .prop_map(|(lead, m, tags, sep, fields, ts, trail)| {
            let mut line = format!("{lead}{m}");
            for (k, v) in tags {
                line += &format!(",{k}={v}");
            }
            line += &sep;
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line += &fields.join(",");
            if !ts.is_empty() {
                line += &format!(" {ts}");
            }
            line + &trail
        })
}

/// Bodies of such lines with comments and blank lines, sometimes with one byte
/// replaced.
fn body_text() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        8 => line_text(),
        1 => one_of(&["", "# note", "  # \"quoted", " \t", "\r"]),
    ];
    (
        prop::collection::vec(line, 1..5),
        any::<bool>(),
        prop::option::weighted(
            0.2,
            (any::<prop::sample::Index>(), prop::sample::select(ALPHABET)),
        ),
    )
        .prop_map(|(lines, final_newline, mutation)| {
            let mut body = lines.join("\n").into_bytes();
            if final_newline {
                body.push(b'\n');
            }
            if let Some((at, byte)) = mutation {
                if !body.is_empty() {
                    let at = at.index(body.len());
                    body[at] = byte;
                }
            }
            body
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The whole-body checker (one scan, optimistic line ends, lazy line numbers)
    /// says exactly what checking `split_lines` one line at a time says.
    #[test]
    fn check_body_matches_line_by_line(body in body_text()) {
        prop_assert_eq!(
            check_body(&body),
            reference_check_body(&body),
            "{:?}", String::from_utf8_lossy(&body)
        );
    }

    #[test]
    fn check_body_matches_line_by_line_on_noise(body in body_from(ALPHABET)) {
        prop_assert_eq!(check_body(&body), reference_check_body(&body));
    }

    /// The fast paths for keys and fields change no answer, on plausible bodies and on
    /// ones built to sit on their edges.
    #[test]
    fn fast_paths_change_nothing(body in prop_oneof![body_text(), edge_body()]) {
        prop_assert_eq!(
            check_body(&body),
            general_check_body(&body),
            "{:?}", String::from_utf8_lossy(&body)
        );
    }

    /// A stamped body needs no rewrite, has the same points, is its own stamp, and
    /// InfluxDB cuts it into exactly the lines counted here.
    #[test]
    fn stamped_bodies_split_the_same_on_the_backend(body in body_text()) {
        if let Ok(info) = check_body(&body) {
            let stamped = stamped(&body, 7);
            prop_assert_eq!(
                check_body(&stamped),
                Ok(BodyInfo { points: info.points, needs_rewrite: false })
            );
            prop_assert_eq!(stamped_twice(&stamped), stamped.clone());
            let ours: Vec<Vec<u8>> = split_lines(&stamped).map(|l| l.raw.to_vec()).collect();
            prop_assert_eq!(ours.len(), info.points);
            prop_assert_eq!(backend_split(&stamped), ours);
        }
    }

    /// Numbers at every offset in the 64-byte words and across them, in bodies of
    /// one to three lines: the bitmap fast path and the byte-wise path agree with
    /// the plain grammar.
    #[test]
    fn numbers_follow_the_grammar(token in number_token(), pad in 0usize..140, lines in 1usize..4) {
        let want = number_is_valid(&token);
        let name = "m".repeat(pad + 1);
        for line in [
            format!("{name} v={token}"),
            format!("{name} v={token},w=1"),
            format!("{name} w=1,v={token} 5"),
        ] {
            prop_assert_eq!(check_line(line.as_bytes()).is_ok(), want, "{:?}", line);
            let body = format!("{line}\n").repeat(lines);
            prop_assert_eq!(check_body(body.as_bytes()).is_ok(), want, "{:?}", body);
            let mut general = Scan::new(body.as_bytes());
            general.fast_paths = false;
            prop_assert_eq!(check_lines(general).is_ok(), want, "{:?}", body);
        }
    }

    #[test]
    fn timestamps_follow_the_grammar(token in number_token(), pad in 0usize..140) {
        let magnitude = token.strip_prefix('-').unwrap_or(&token);
        let want = !magnitude.is_empty()
            && magnitude.bytes().all(|b| b.is_ascii_digit())
            && token.parse::<i64>().is_ok();
        let line = format!("{} v=1 {token}", "m".repeat(pad + 1));
        let got = check_line(line.as_bytes());
        if token.is_empty() {
            prop_assert_eq!(got, Ok(LineKind::Point { has_timestamp: false }));
        } else if want {
            prop_assert_eq!(got, Ok(LineKind::Point { has_timestamp: true }));
        } else {
            prop_assert!(got.is_err(), "{:?} {:?}", line, got);
        }
    }
}

/// `string_end` written byte by byte.
fn reference_string_end(buf: &[u8], mut i: usize) -> Option<usize> {
    while i < buf.len() {
        match buf[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The word-at-a-time search agrees with the plain one, from any start, on
    /// strings short and long, closed or not.
    #[test]
    fn string_end_matches_reference(
        buf in prop::collection::vec(
            prop_oneof![20 => Just(b'a'), 1 => Just(b'"'), 2 => Just(b'\\'), 1 => any::<u8>()],
            0..200,
        ),
        start in any::<prop::sample::Index>(),
    ) {
        let start = start.index(buf.len() + 1);
        prop_assert_eq!(string_end(&buf, start), reference_string_end(&buf, start));
    }
}

/// `check_body` with the fast paths off.
fn general_check_body(body: &[u8]) -> Result<BodyInfo, ParseError> {
    let mut general = Scan::new(body);
    general.fast_paths = false;
    check_lines(general)
}

/// Lines on the edges of `plain_key` and `skip_plain_fields`: tag keys that share
/// their first 8 bytes or are prefixes of one another, NUL bytes, unsorted and
/// repeated keys, escapes, empty parts, booleans and strings anywhere, CRLF.
fn edge_body() -> impl Strategy<Value = Vec<u8>> {
    let tag_key = mostly(
        &[
            "a",
            "ab",
            "b",
            "a\0",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefgi",
            "abcdefghij",
            "abcdefgh\0",
            "host",
            "region",
            r"a\ b",
            r"a\,b",
            r"a\=b",
        ],
        &["", "a=b", r"\"],
    );
    let tag_value = mostly(
        &["1", "x", "web-01", r"a\ b", r"a\=b", "\""],
        &["", "=", "a=b", r"\"],
    );
    let field_value = mostly(
        &[
            "1",
            "12",
            "1.5",
            "0.123",
            "555i",
            "-1",
            "1e3",
            "t",
            "true",
            "FALSE",
            r#""""#,
            r#""ok""#,
            r#""ok, warming up""#,
            r#""a=b c""#,
            r#""e \"q\" s""#,
            r#""\\""#,
            "\"a\nb\"",
            r#""0123456789abcdef0123456789abcdef0123456789abcdef0123456789""#,
        ],
        &["truex", "tru", r#""x"y"#, r#""open"#, ""],
    );
    let line = (
        mostly(&["m", "cpu", "m=x", r"m\ x"], &["", ",m"]),
        prop::collection::vec((tag_key, tag_value), 0..5),
        mostly(&[" ", "  "], &[","]),
        prop::collection::vec(
            (mostly(&["v", "w", "usage", r"a\ b"], &[""]), field_value),
            1..5,
        ),
        mostly(&["", " 1795317000000000000", " 1", " -5"], &[" x", " 1 "]),
        mostly(&["", "\r", " "], &["\t"]),
    )
        .prop_map(|(m, mut tags, sep, fields, ts, trail)| {
            // Mostly sorted, as clients send them.
            if m.len() != 3 {
                tags.sort();
            }
            let mut line = m.to_string();
            for (k, v) in tags {
                line += &format!(",{k}={v}");
            }
            line += &sep;
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line + &fields.join(",") + &ts + &trail
        });
    prop::collection::vec(line, 1..4).prop_map(|lines| lines.join("\n").into_bytes())
}

fn stamped_twice(body: &[u8]) -> Vec<u8> {
    stamped(body, 8)
}

/// Lines longer than the scan's 1 KiB window, with tokens straddling its edges.
#[test]
fn long_lines_cross_windows() {
    for pad in [0, 1, 7, 63, 64, 65, 1000, 1017, 1023, 1024, 1025, 3000] {
        let mut fields = Vec::new();
        for k in 0..200 {
            fields.push(format!("f{k}={}.{k}", k * 37));
            fields.push(format!("g{k}={}i", k * 1_000_003));
            fields.push(format!("h{k}=\"s {k}, x=y\""));
        }
        let line = format!(
            "{},t=v {} 1700000000000000000",
            "m".repeat(pad + 1),
            fields.join(",")
        );
        let body = format!("{line}\n{line}\r\n# c\n{line}");
        assert_eq!(
            check_body(body.as_bytes()),
            Ok(BodyInfo {
                points: 3,
                needs_rewrite: true
            }),
            "pad {pad}"
        );
        let broken = body.replacen("g150=", "g150=x", 1);
        assert_eq!(
            check_body(broken.as_bytes()),
            Err(ParseError {
                line: 1,
                reason: reason::INVALID_BOOLEAN
            }),
            "pad {pad}"
        );
        let broken = format!(
            "{line}\n{}",
            line.replace("f199=7363.199", "f199=7363.1.99")
        );
        assert_eq!(
            check_body(broken.as_bytes()),
            Err(ParseError {
                line: 2,
                reason: reason::INVALID_NUMBER
            }),
            "pad {pad}"
        );
    }
}

/// Line ends are found from the window's newline bits, and with `memchr` past its
/// end: lines of every length near a word and near a window, so that their `\n`
/// (or `\r\n`, or a `\n` inside a string) falls on each side of every edge, a line
/// that exactly fills a window, and a last line without `\n`.
#[test]
fn line_ends_on_window_edges() {
    let window = 64 * WINDOW_WORDS;
    let pads = (1..140).chain(window - 70..window + 70);
    for pad in pads {
        let m = "m".repeat(pad);
        let shapes = [
            format!("{m} v=1"),
            format!("{m} v=1 5\r"),
            format!("{m} s=\"a\nb\",v=1i 5"),
            format!("{m} s=\"a\r\n\""),
            format!("# {m} \""),
            format!("{m},t=\"x v=1"),
        ];
        for (k, shape) in shapes.iter().enumerate() {
            // Enough lines to cross a few windows, a different shape in the middle.
            let mut lines = vec![shape.clone(); 3 * window / (pad + 8) + 3];
            let mid = lines.len() / 2;
            lines[mid] = shapes[(k + 1) % shapes.len()].clone();
            let body = lines.join("\n");
            for body in [
                body.clone(),
                format!("{body}\n"),
                format!("{body}\n{m} v=1.1."),
            ] {
                let want = reference_check_body(body.as_bytes());
                assert_eq!(check_body(body.as_bytes()), want, "pad {pad} shape {k}");
                assert_eq!(general_check_body(body.as_bytes()), want, "pad {pad}");
            }
        }
    }
    // One line, `\n` included, exactly a window; then the next starts a new one.
    let line = format!("{} v=1\n", "m".repeat(window - 5));
    assert_eq!(line.len(), window);
    let body = format!("{line}{line}m v=\"\n\"");
    assert_eq!(
        check_body(body.as_bytes()),
        Ok(BodyInfo {
            points: 3,
            needs_rewrite: true
        })
    );
    let body = format!("{line}{line}m v=\"\n");
    assert_eq!(
        check_body(body.as_bytes()),
        Err(ParseError {
            line: 3,
            reason: reason::UNTERMINATED_STRING
        })
    );
}

/// Short buffers classify through the padded path, and the first line of a body
/// through the one that reaches back: every length up to two words.
#[test]
fn every_short_length() {
    for len in 1..130 {
        let line = format!("m v={}", "9".repeat(len));
        assert!(check_line(line.as_bytes()).is_ok(), "{len}");
        let line = format!("m v={}x", "9".repeat(len));
        assert_eq!(
            check_line(line.as_bytes()),
            Err(reason::INVALID_NUMBER),
            "{len}"
        );
        let body = format!("m v=1\nm v=1,w=2i{}\n", " ".repeat(len));
        assert!(check_body(body.as_bytes()).is_ok(), "{len}");
    }
}

/// One row of `tests/data/lineproto-cases.jsonl`.
struct Case {
    line: Vec<u8>,
    relay: String,
}

/// The JSON string value of `key` in a flat one-line object.
fn json_field(row: &str, key: &str) -> String {
    let pat = format!("\"{key}\": \"");
    let at = row
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {row}"))
        + pat.len();
    let mut out = String::new();
    let mut chars = row[at..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return out,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).expect("\\u escape");
                    out.push(char::from_u32(code).expect("scalar value"));
                }
                Some(other) => out.push(other), // \" \\ \/
                None => break,
            },
            c => out.push(c),
        }
    }
    panic!("unterminated {key} in {row}");
}

fn cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lineproto-cases.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("read the cases");
    text.lines()
        .filter(|row| !row.trim().is_empty())
        .map(|row| Case {
            line: json_field(row, "line").into_bytes(),
            relay: json_field(row, "relay"),
        })
        .collect()
}

fn stamped(body: &[u8], ts: i64) -> Vec<u8> {
    let mut out = Vec::new();
    stamp_body(body, ts, &mut out);
    out
}

#[test]
fn influxdb_cases() {
    let cases = cases();
    assert_eq!(cases.len(), 97);
    let mut checked = 0;
    for case in &cases {
        let shown = String::from_utf8_lossy(&case.line);
        let result = check_body(&case.line);
        match case.relay.as_str() {
            "must-accept" => {
                let info = result.unwrap_or_else(|e| panic!("{shown:?} rejected: {e}"));
                assert_eq!(info.points, 1, "{shown:?}");
                let text = case.line.strip_suffix(b"\r").unwrap_or(&case.line);
                let kind = check_line(text).expect("check_line agrees");
                let LineKind::Point { has_timestamp } = kind else {
                    panic!("{shown:?} is {kind:?}");
                };
                assert_eq!(has_timestamp, ends_with_timestamp(text), "{shown:?}");
                let mut want = if has_timestamp {
                    text.to_vec()
                } else {
                    let mut w = trim_end_blanks(text).to_vec();
                    w.extend_from_slice(b" 123");
                    w
                };
                want.push(b'\n');
                assert_eq!(stamped(&case.line, 123), want, "{shown:?}");
                checked += 1;
            }
            "must-reject" => {
                assert!(result.is_err(), "{shown:?} accepted");
                checked += 1;
            }
            "either" => {}
            other => panic!("unknown verdict {other}"),
        }
    }
    assert_eq!(checked, 94);
}

fn reason_of(body: &str) -> Result<BodyInfo, ParseError> {
    check_body(body.as_bytes())
}

fn err(line: usize, reason: Reason) -> Result<BodyInfo, ParseError> {
    Err(ParseError { line, reason })
}

#[test]
fn reasons() {
    use reason::*;
    let table: &[(&str, Reason)] = &[
        (",t=1 v=1", MISSING_MEASUREMENT),
        ("m", MISSING_FIELDS),
        ("m ", MISSING_FIELDS),
        ("m,t=1", MISSING_FIELDS),
        ("m,t v=1", MISSING_TAG_VALUE),
        ("m,t= v=1", MISSING_TAG_VALUE),
        ("m,=1 v=1", MISSING_TAG_KEY),
        ("m, v=1", MISSING_TAG_KEY),
        ("m,t=a=b v=1", INVALID_TAG),
        ("m,t==b v=1", INVALID_TAG),
        ("m,b=1,a=2,b=3 v=1", DUPLICATE_TAG),
        ("m,a=1,a=2 v=1", DUPLICATE_TAG),
        ("m =1", MISSING_FIELD_KEY),
        ("m v=1,=2", MISSING_FIELD_KEY),
        ("m v=", MISSING_FIELD_VALUE),
        ("m v=,w=1", MISSING_FIELD_VALUE),
        ("m v", INVALID_FIELD),
        ("m v=1,", INVALID_FIELD),
        ("m v=\"x\"y", INVALID_FIELD),
        ("m v=1.2.3", INVALID_NUMBER),
        ("m v=1.5i", INVALID_NUMBER),
        ("m v=-1u", INVALID_NUMBER),
        ("m v=1e5i", INVALID_NUMBER),
        ("m v=-", INVALID_NUMBER),
        ("m v=.", INVALID_NUMBER),
        ("m v=nan", INVALID_NUMBER),
        ("m v=1e400", OUT_OF_RANGE),
        ("m v=18446744073709551616u", OUT_OF_RANGE),
        ("m v=-9223372036854775809i", OUT_OF_RANGE),
        ("m v=yes", INVALID_BOOLEAN),
        ("m v=truE", INVALID_BOOLEAN),
        ("m v=\"abc", UNTERMINATED_STRING),
        ("m v=1 12a", BAD_TIMESTAMP),
        ("m v=1 -", BAD_TIMESTAMP),
        ("m v=1 9223372036854775808", BAD_TIMESTAMP),
        ("m v=1 1\t", BAD_TIMESTAMP),
        ("m v=1 1 2", AFTER_TIMESTAMP),
        ("m v=1 1 \t", AFTER_TIMESTAMP),
        (" m=x,t=a\"b v=1", AMBIGUOUS_QUOTES),
        ("m v=\"x\"y,w=1", INVALID_FIELD),
        ("m v=truex,w=1", INVALID_BOOLEAN),
        ("m v=true w=1", BAD_TIMESTAMP),
        ("m,abcdefghX=1,abcdefghX=2 v=1", DUPLICATE_TAG),
        ("m,a\0=1,a\0=2 v=1", DUPLICATE_TAG),
    ];
    for &(line, want) in table {
        assert_eq!(reason_of(line), err(1, want), "{line:?}");
    }
}

#[test]
fn numbers_at_the_limits() {
    for ok in [
        "m v=18446744073709551615u",
        "m v=-9223372036854775808i",
        "m v=0000000000000000000000000001i",
        "m v=1e-400",
        "m v=1.7976931348623157e308",
        "m v=-.5",
        "m v=-5.",
        "m v=1.e5",
        "m v=0E-0",
        "m v=1 -9223372036854775808",
        "m v=1 9223372036854775807",
    ] {
        assert!(reason_of(ok).is_ok(), "{ok:?}");
    }
    assert_eq!(reason_of("m v=1.8e308"), err(1, reason::OUT_OF_RANGE));
    let long = format!("m v={}", "9".repeat(400));
    assert_eq!(reason_of(&long), err(1, reason::OUT_OF_RANGE));
    let long = format!("m v={}.5", "0".repeat(400));
    assert!(reason_of(&long).is_ok());
}

#[test]
fn line_numbers_count_physical_lines() {
    let body = "a v=1\n\n# note\nb v=2\nc v=\"x\ny\nz\"\n  \nd v=oops\n";
    assert_eq!(reason_of(body), err(9, reason::INVALID_BOOLEAN));
    let body = "a v=1\r\nb v=\"one\r\ntwo\"\r\nc\r\n";
    assert_eq!(reason_of(body), err(4, reason::MISSING_FIELDS));
    assert_eq!(
        reason_of("a v=1\nb v=\"never closed\nc v=1\n"),
        err(2, reason::UNTERMINATED_STRING)
    );
    assert_eq!(reason_of("x"), err(1, reason::MISSING_FIELDS));
    assert_eq!(reason_of("\n\n\nx"), err(4, reason::MISSING_FIELDS));
}

#[test]
fn quoted_newlines() {
    let body = b"m v=\"a\nb\",w=1i 5\nm v=\"c\\\"\nd\" 6\nm s=\"\\\\\" 7\n";
    let lines = lines_of(body);
    assert_eq!(
        lines,
        vec![
            (b"m v=\"a\nb\",w=1i 5".to_vec(), 1),
            (b"m v=\"c\\\"\nd\" 6".to_vec(), 3),
            (b"m s=\"\\\\\" 7".to_vec(), 5),
        ]
    );
    assert_eq!(
        check_body(body),
        Ok(BodyInfo {
            points: 3,
            needs_rewrite: false
        })
    );
    // Quotes outside a field value do not open a string.
    let body = b"\"m\",t=\"a v=1 1\nm,t=b\" v=1 2\n# say \"hi\nm v=\"x\" 3\n";
    assert_eq!(lines_of(body).len(), 4);
    assert_eq!(
        check_body(body),
        Ok(BodyInfo {
            points: 3,
            needs_rewrite: true
        })
    );
    // A string key is not a string value.
    assert_eq!(lines_of(b"m \"k=1 2\nm v=2").len(), 2);
}

#[test]
fn crlf_blank_and_comment_lines() {
    let body = b"# header\r\n\r\n  \t\nm v=1 10\r\n\t# indented\nm v=2 11\r\n";
    assert_eq!(
        check_body(body),
        Ok(BodyInfo {
            points: 2,
            needs_rewrite: true
        })
    );
    assert_eq!(stamped(body, 99), b"m v=1 10\nm v=2 11\n");
    let body = b"m v=1 10\n\nm v=2 11";
    assert_eq!(
        check_body(body),
        Ok(BodyInfo {
            points: 2,
            needs_rewrite: false
        })
    );
    assert_eq!(check_body(b""), Ok(BodyInfo::default()));
    assert_eq!(check_body(b"\n \n"), Ok(BodyInfo::default()));
    assert_eq!(check_line(b"  # c"), Ok(LineKind::Comment));
    assert_eq!(check_line(b" \t "), Ok(LineKind::Blank));
    // Only one `\r` is a line ending.
    assert_eq!(reason_of("m v=1\r\r\n"), err(1, reason::INVALID_NUMBER));
}

#[test]
fn escapes() {
    for ok in [
        "m\\ x,t\\ k=v\\ w f\\ k=1",
        "m\\,x,t\\,k=v\\,w f\\,k=1",
        "m,t\\=k=v\\=w f\\=k=1",
        "m v=\"a\\\\\"",
        "m v=\"\\\"\"",
        "m v=\"a\\nb\"",
        "m=x v=1",
        "\\ m v=1",
        "m,t=a\\ b\\,c\\=d v=1",
    ] {
        assert!(reason_of(ok).is_ok(), "{ok:?}: {:?}", reason_of(ok));
    }
    // InfluxDB's key scanner only looks at the byte before a separator.
    assert_eq!(reason_of("m,t=a\\\\ v=1"), err(1, reason::INVALID_TAG));
    assert_eq!(reason_of("m v=1\\"), err(1, reason::INVALID_NUMBER));
    assert_eq!(reason_of("m v\\"), err(1, reason::INVALID_FIELD));
    // A backslash before a newline does not join lines.
    assert_eq!(lines_of(b"m,t=a\\\nb v=1").len(), 2);
    assert_eq!(reason_of("m,t=a\\\nb v=1"), err(1, reason::MISSING_FIELDS));
}

#[test]
fn unsorted_tags() {
    assert!(reason_of("m,b=1,a=2,c=3 v=1").is_ok());
    let many: Vec<String> = (0..40).rev().map(|i| format!("k{i:02}=v")).collect();
    let line = format!("m,{} v=1", many.join(","));
    assert!(reason_of(&line).is_ok());
    let line = format!("m,{},k17=w v=1", many.join(","));
    assert_eq!(reason_of(&line), err(1, reason::DUPLICATE_TAG));
    let line = format!("m,{},k17=w v=1", many[..10].join(","));
    assert!(reason_of(&line).is_ok());
    let line = format!("m,{},k35=w v=1", many[..10].join(","));
    assert_eq!(reason_of(&line), err(1, reason::DUPLICATE_TAG));
    // Keys compare as written: an escaped space is not a space.
    assert!(reason_of("m,a\\ b=1,a\\,b=2 v=1").is_ok());
    assert_eq!(
        reason_of("m,b=1,a\\ b=2,a\\ b=3 v=1"),
        err(1, reason::DUPLICATE_TAG)
    );
    assert!(reason_of("m,b\\ =1,b=2,b\\ =3 v=1").is_err());
}

/// Keys that `key_prefix` orders, and ones only the full compare tells apart.
#[test]
fn tag_order_near_8_bytes() {
    for line in [
        "m,abcdefghX=1,abcdefghY=2 v=1",
        "m,abcdefghY=1,abcdefghX=2 v=1",
        "m,abcdefgh=1,abcdefghX=2 v=1",
        "m,abcdefghX=1,abcdefgh=2 v=1",
        "m,a=1,ab=2 v=1",
        "m,ab=1,a=2 v=1",
        "m,a=1,a\0=2 v=1",
        "m,a\0=1,a=2 v=1",
        "m,a=1,b=2,a\0=3 v=1",
    ] {
        assert_eq!(
            reason_of(line),
            Ok(BodyInfo {
                points: 1,
                needs_rewrite: true
            }),
            "{line:?}"
        );
    }
}

/// Booleans and strings, last on the line or not, with and without a timestamp.
#[test]
fn booleans_and_strings_anywhere() {
    for (line, needs_rewrite) in [
        ("m v=true", true),
        ("m v=t,w=\"x\" 1", false),
        ("m v=\"a, b=c\" 1", false),
        ("m v=\"e \\\"q\\\" s\",w=F", true),
        ("m v=\"\\\\\",w=1i 1", false),
        ("m v=FALSE 1795317000000000000", false),
    ] {
        let want = Ok(BodyInfo {
            points: 1,
            needs_rewrite,
        });
        assert_eq!(reason_of(line), want, "{line:?}");
        let body = format!("{line}\n{line}\r\n");
        assert_eq!(
            check_body(body.as_bytes()).map(|i| i.points),
            Ok(2),
            "{body:?}"
        );
    }
}

#[test]
fn newline_only_inside_strings() {
    assert_eq!(check_line(b"m\nx v=1"), Err(reason::NEWLINE));
    assert_eq!(check_line(b"m,t=a\nb v=1"), Err(reason::NEWLINE));
    assert_eq!(check_line(b"m v\nw=1"), Err(reason::NEWLINE));
    assert_eq!(check_line(b"m v=1\n"), Err(reason::INVALID_NUMBER));
    assert_eq!(check_line(b"\nm v=1"), Err(reason::NEWLINE));
    assert_eq!(
        check_line(b"m v=\"a\nb\""),
        Ok(LineKind::Point {
            has_timestamp: false
        })
    );
}

#[test]
fn stamping_at_each_precision() {
    let ns: i64 = 1_700_000_123_456_789_012;
    let want = [
        ("n", 1_700_000_123_456_789_012),
        ("ns", 1_700_000_123_456_789_012),
        ("u", 1_700_000_123_456_789),
        ("us", 1_700_000_123_456_789),
        ("µ", 1_700_000_123_456_789),
        ("ms", 1_700_000_123_456),
        ("s", 1_700_000_123),
        ("m", 28_333_335),
        ("h", 472_222),
    ];
    let body = b"m v=1\nm v=2 5\nm v=3  \t\r\n";
    for (name, ts) in want {
        let precision = Precision::parse(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(precision.from_nanos(ns), ts, "{name}");
        let out = stamped(body, precision.from_nanos(ns));
        let expect = format!("m v=1 {ts}\nm v=2 5\nm v=3 {ts}\n");
        assert_eq!(String::from_utf8_lossy(&out), expect, "{name}");
    }
    for bad in ["", "N", "nanoseconds", "S", "μ", "us "] {
        assert_eq!(Precision::parse(bad), None, "{bad:?}");
    }
    assert_eq!(
        Precision::parse("us").map(Precision::as_query_value),
        Some("u")
    );
    assert_eq!(Precision::default().as_query_value(), "n");
}

#[test]
fn timestamps_are_written_in_decimal() {
    for ts in [0, 7, -7, 1_700_000_000, i64::MAX, i64::MIN] {
        let mut out = b"x".to_vec();
        write_timestamp(&mut out, ts);
        assert_eq!(out, format!("x{ts}").into_bytes());
    }
}

#[test]
fn needs_rewrite() {
    let cases: &[(&str, bool)] = &[
        ("m v=1 1\nm v=2 2\n", false),
        ("m v=1 1\nm v=2\n", true),
        ("m v=1 1\r\n", true),
        ("m v=1 1\n# c\n", true),
        ("m v=1 1\n\n   \n", false),
        ("m v=1 1 ", false),
    ];
    for &(body, want) in cases {
        let info = reason_of(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        assert_eq!(info.needs_rewrite, want, "{body:?}");
    }
}

#[test]
fn error_display() {
    let e = ParseError {
        line: 3,
        reason: reason::BAD_TIMESTAMP,
    };
    assert_eq!(e.to_string(), "line 3: bad timestamp");
}
