//! Just enough JSON to walk InfluxDB's `/query` answers without building a tree.
//!
//! A chunked answer is one JSON document per line, each holding at most `chunk_size`
//! rows; [`walk`] takes one such line and calls a [`Visitor`] once per series and once
//! per row, handing out scalars as slices of the line. That keeps memory to one chunk
//! whatever the size of the whole answer, and keeps each value's text exactly as the
//! backend sent it (the digest wants `1` and `1.0` to stay different).
//!
//! The shape read is `{"results":[{"series":[{"name","tags","columns","values"}],
//! "error"}],"error"}`; unknown keys are skipped, so a newer server's additions
//! (`partial`, `messages`) do no harm. Sans-I/O: bytes in, calls out.

use std::borrow::Cow;
use std::fmt;

/// Nesting deeper than this is refused: InfluxDB's answers are four levels deep, and a
/// recursive skip must not be driven into a stack overflow by a broken peer.
const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Bool,
    Null,
}

/// One scalar as sent: `raw` is the token's text; for strings the text between the
/// quotes with escapes not yet decoded (see [`Scalar::text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scalar<'a> {
    pub kind: Kind,
    pub raw: &'a [u8],
}

impl<'a> Scalar<'a> {
    /// The value as text: strings decoded, other tokens as sent.
    pub fn text(&self) -> Cow<'a, str> {
        match self.kind {
            Kind::String => match unescape(self.raw) {
                Cow::Borrowed(b) => String::from_utf8_lossy(b),
                Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
            },
            _ => String::from_utf8_lossy(self.raw),
        }
    }

    /// The value's bytes as the digest sees them: strings decoded (two servers may
    /// escape the same string differently), other tokens as sent.
    pub fn canonical(&self) -> Cow<'a, [u8]> {
        match self.kind {
            Kind::String => unescape(self.raw),
            _ => Cow::Borrowed(self.raw),
        }
    }
}

/// One series header of an answer; its rows follow through [`Visitor::row`].
#[derive(Debug, Default)]
pub struct Series<'a> {
    pub name: Option<Scalar<'a>>,
    /// With `GROUP BY *`, every tag key of the measurement; `""` for a key the series
    /// does not have.
    pub tags: Vec<(Scalar<'a>, Scalar<'a>)>,
    pub columns: Vec<Scalar<'a>>,
}

impl Series<'_> {
    /// The series' tags, decoded and sorted by key, without the empty ones: `GROUP BY
    /// *` lists every tag key of the measurement, showing a key the series lacks as
    /// `""`, and InfluxDB stores no empty tag value.
    pub fn sorted_tags(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut tags: Vec<(Vec<u8>, Vec<u8>)> = self
            .tags
            .iter()
            .map(|(k, v)| (k.canonical().into_owned(), v.canonical().into_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        tags.sort();
        tags
    }
}

/// What [`walk`] calls. An `Err` from either method stops the walk and comes back as
/// [`ScanError::Rejected`].
pub trait Visitor {
    fn series(&mut self, series: &Series<'_>) -> Result<(), String>;
    /// `row` has exactly one scalar per column of the series.
    fn row(&mut self, row: &[Scalar<'_>]) -> Result<(), String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// Not the JSON we expect, at this byte of the line.
    Syntax { offset: usize, what: &'static str },
    /// The answer itself reports an error (`"error": "…"`), e.g. a bad query.
    Answer(String),
    /// The visitor refused the data.
    Rejected(String),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Syntax { offset, what } => {
                write!(f, "unreadable answer: {what} at byte {offset}")
            }
            ScanError::Answer(message) => write!(f, "the backend answered: {message}"),
            ScanError::Rejected(message) => f.write_str(message),
        }
    }
}

/// Walk one answer document (one line of a chunked answer).
pub fn walk(line: &[u8], visitor: &mut dyn Visitor) -> Result<(), ScanError> {
    let mut c = Cursor { buf: line, pos: 0 };
    c.ws();
    if c.pos == c.buf.len() {
        // Blank line between chunks.
        return Ok(());
    }
    c.begin(b'{')?;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        match key {
            b"results" => {
                c.begin(b'[')?;
                let mut first = true;
                while c.next_item(&mut first)? {
                    result(&mut c, visitor)?;
                }
            }
            b"error" => return Err(ScanError::Answer(c.scalar()?.text().into_owned())),
            _ => c.skip(0)?,
        }
    }
    c.ws();
    if c.pos != c.buf.len() {
        return Err(c.syntax("text after the document"));
    }
    Ok(())
}

fn result(c: &mut Cursor<'_>, visitor: &mut dyn Visitor) -> Result<(), ScanError> {
    c.begin(b'{')?;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        match key {
            b"series" => {
                c.begin(b'[')?;
                let mut first = true;
                while c.next_item(&mut first)? {
                    series(c, visitor)?;
                }
            }
            b"error" => return Err(ScanError::Answer(c.scalar()?.text().into_owned())),
            _ => c.skip(0)?,
        }
    }
    Ok(())
}

fn series<'a>(c: &mut Cursor<'a>, visitor: &mut dyn Visitor) -> Result<(), ScanError> {
    let mut s = Series::default();
    // Where "values" starts: Go writes it after "columns", but a reader that
    // depends on key order is fragile, so the rows are read once the header is whole.
    let mut values_at = None;
    c.begin(b'{')?;
    let mut first = true;
    while let Some(key) = c.next_key(&mut first)? {
        match key {
            b"name" => s.name = Some(c.scalar()?),
            b"tags" => {
                c.begin(b'{')?;
                let mut first = true;
                while let Some(k) = c.next_key_scalar(&mut first)? {
                    s.tags.push((k, c.scalar()?));
                }
            }
            b"columns" => {
                c.begin(b'[')?;
                let mut first = true;
                while c.next_item(&mut first)? {
                    s.columns.push(c.scalar()?);
                }
            }
            b"values" => {
                values_at = Some(c.pos);
                c.skip(0)?;
            }
            _ => c.skip(0)?,
        }
    }
    visitor.series(&s).map_err(ScanError::Rejected)?;
    let Some(at) = values_at else {
        return Ok(());
    };
    let end = c.pos;
    c.pos = at;
    let mut row = Vec::with_capacity(s.columns.len());
    c.begin(b'[')?;
    let mut first = true;
    while c.next_item(&mut first)? {
        row.clear();
        c.begin(b'[')?;
        let mut first = true;
        while c.next_item(&mut first)? {
            row.push(c.scalar()?);
        }
        if row.len() != s.columns.len() {
            return Err(c.syntax("a row with another number of values than columns"));
        }
        visitor.row(&row).map_err(ScanError::Rejected)?;
    }
    c.pos = end;
    Ok(())
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn syntax(&self, what: &'static str) -> ScanError {
        ScanError::Syntax {
            offset: self.pos,
            what,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.buf.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.buf.get(self.pos).copied()
    }

    fn begin(&mut self, open: u8) -> Result<(), ScanError> {
        if self.peek() != Some(open) {
            return Err(self.syntax(if open == b'{' {
                "expected an object"
            } else {
                "expected an array"
            }));
        }
        self.pos += 1;
        Ok(())
    }

    /// After `begin(b'[')`: `true` when another item follows (positioned on it).
    fn next_item(&mut self, first: &mut bool) -> Result<bool, ScanError> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.syntax("expected ',' or ']'")),
        }
        *first = false;
        Ok(true)
    }

    /// After `begin(b'{')`: the next key (raw, escapes undecoded) with its `:` read.
    fn next_key(&mut self, first: &mut bool) -> Result<Option<&'a [u8]>, ScanError> {
        Ok(self.next_key_scalar(first)?.map(|k| k.raw))
    }

    fn next_key_scalar(&mut self, first: &mut bool) -> Result<Option<Scalar<'a>>, ScanError> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.syntax("expected ',' or '}'")),
        }
        *first = false;
        let key = self.scalar()?;
        if key.kind != Kind::String {
            return Err(self.syntax("expected a string key"));
        }
        if self.peek() != Some(b':') {
            return Err(self.syntax("expected ':'"));
        }
        self.pos += 1;
        Ok(Some(key))
    }

    fn scalar(&mut self) -> Result<Scalar<'a>, ScanError> {
        let start = match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let start = self.pos;
                loop {
                    match self.buf.get(self.pos) {
                        Some(b'"') => break,
                        // The escaped byte cannot end the string; its validity is
                        // the decoder's business.
                        Some(b'\\') => self.pos += 2,
                        Some(_) => self.pos += 1,
                        None => return Err(self.syntax("unterminated string")),
                    }
                }
                let raw = &self.buf[start..self.pos];
                self.pos += 1;
                return Ok(Scalar {
                    kind: Kind::String,
                    raw,
                });
            }
            Some(_) => self.pos,
            None => return Err(self.syntax("unexpected end")),
        };
        while let Some(b) = self.buf.get(self.pos) {
            if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r' | b':') {
                break;
            }
            self.pos += 1;
        }
        let raw = &self.buf[start..self.pos];
        let kind = match raw {
            b"null" => Kind::Null,
            b"true" | b"false" => Kind::Bool,
            [b'-' | b'0'..=b'9', rest @ ..]
                if rest
                    .iter()
                    .all(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')) =>
            {
                Kind::Number
            }
            _ => {
                self.pos = start;
                return Err(self.syntax("expected a value"));
            }
        };
        Ok(Scalar { kind, raw })
    }

    fn skip(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(self.syntax("nested too deeply"));
        }
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut first = true;
                while self.next_key(&mut first)?.is_some() {
                    self.skip(depth + 1)?;
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut first = true;
                while self.next_item(&mut first)? {
                    self.skip(depth + 1)?;
                }
            }
            _ => {
                self.scalar()?;
            }
        }
        Ok(())
    }
}

/// Decode a JSON string's escapes. Bad escapes are kept as written: the text is only
/// compared and shown, and the same bad bytes from two backends still compare equal.
fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let simple = match raw[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        let Some(unit) = hex4(raw, i + 2).filter(|_| raw[i + 1] == b'u') else {
            out.push(b);
            i += 1;
            continue;
        };
        i += 6;
        let mut code = u32::from(unit);
        // A surrogate pair is two escapes for one character.
        if (0xD800..0xDC00).contains(&unit) && raw.get(i) == Some(&b'\\') {
            if let Some(low) = hex4(raw, i + 2)
                .filter(|low| raw.get(i + 1) == Some(&b'u') && (0xDC00..0xE000).contains(low))
            {
                code = 0x10000 + ((code - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                i += 6;
            }
        }
        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    Cow::Owned(out)
}

fn hex4(raw: &[u8], at: usize) -> Option<u16> {
    let digits = raw.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u16::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is shown, as text.
    #[derive(Default)]
    struct Record {
        out: Vec<String>,
    }

    impl Visitor for Record {
        fn series(&mut self, s: &Series<'_>) -> Result<(), String> {
            let tags: Vec<String> = s
                .tags
                .iter()
                .map(|(k, v)| format!("{}={}", k.text(), v.text()))
                .collect();
            let columns: Vec<String> = s.columns.iter().map(|c| c.text().into_owned()).collect();
            let name = s.name.map(|n| n.text().into_owned()).unwrap_or_default();
            self.out.push(format!(
                "series {name} [{}] ({})",
                tags.join(","),
                columns.join(",")
            ));
            Ok(())
        }
        fn row(&mut self, row: &[Scalar<'_>]) -> Result<(), String> {
            let cells: Vec<String> = row
                .iter()
                .map(|s| format!("{:?}:{}", s.kind, String::from_utf8_lossy(s.raw)))
                .collect();
            self.out.push(cells.join(" "));
            Ok(())
        }
    }

    fn walked(text: &str) -> Result<Vec<String>, ScanError> {
        let mut r = Record::default();
        walk(text.as_bytes(), &mut r).map(|()| r.out)
    }

    #[test]
    fn reads_the_answer_of_select_group_by_star() {
        let text = r#"{"results":[{"statement_id":0,"series":[{"name":"m","tags":{"e":"x y","host":"a"},"columns":["time","b","i","s","v"],"values":[[1000,true,2,"q\"u",1],[2000,null,3,null,1.5]]}],"partial":true}]}"#;
        assert_eq!(
            walked(text).unwrap(),
            [
                "series m [e=x y,host=a] (time,b,i,s,v)",
                r#"Number:1000 Bool:true Number:2 String:q\"u Number:1"#,
                "Number:2000 Null:null Number:3 Null:null Number:1.5",
            ]
        );
    }

    #[test]
    fn values_before_columns_still_read() {
        let text =
            r#"{"results":[{"series":[{"values":[[1,2]],"columns":["time","v"],"name":"m"}]}]}"#;
        assert_eq!(
            walked(text).unwrap(),
            ["series m [] (time,v)", "Number:1 Number:2"]
        );
    }

    #[test]
    fn unknown_keys_and_empty_results_are_skipped() {
        let text = r#" {"results":[{"statement_id":0,"messages":[{"level":"w","text":"x"}]}],"x":{"a":[1,{"b":null}]}} "#;
        assert_eq!(walked(text).unwrap(), Vec::<String>::new());
        assert_eq!(walked("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn errors_in_the_answer_are_reported() {
        assert_eq!(
            walked(r#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#),
            Err(ScanError::Answer("database not found: x".into()))
        );
        assert_eq!(
            walked(r#"{"error":"error parsing query: \"x\""}"#),
            Err(ScanError::Answer("error parsing query: \"x\"".into()))
        );
    }

    #[test]
    fn broken_answers_are_errors_not_panics() {
        for text in [
            "{",
            "{\"results\":[",
            "{\"results\":[{\"series\":[{\"columns\":[\"a\"],\"values\":[[1,2]]}]}]}",
            "{\"results\":[{\"series\":[{\"values\":[[\"x]]}]}]}",
            "<html>",
            "{\"results\":[]} trailing",
            "{\"results\":[1 2]}",
        ] {
            assert!(
                matches!(walked(text), Err(ScanError::Syntax { .. })),
                "{text}"
            );
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(walked(&deep).is_err());
    }

    #[test]
    fn strings_decode_their_escapes() {
        let s = Scalar {
            kind: Kind::String,
            raw: br#"a\"b\\c\u00e9\ud83d\ude00\n\q"#,
        };
        assert_eq!(s.text(), "a\"b\\cé😀\n\\q");
        let plain = Scalar {
            kind: Kind::String,
            raw: b"abc",
        };
        assert!(matches!(plain.canonical(), Cow::Borrowed(b"abc")));
    }
}
