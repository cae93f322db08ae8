//! Rows of a `SELECT * … GROUP BY *` answer (epoch=ns) turned back into line protocol,
//! with each field written in the type `SHOW FIELD KEYS` gives it.
//!
//! The JSON answer loses the type: InfluxDB 1.x prints the float `1.0` as `1`, and an
//! integer looks the same as a float. A copy that guessed from the text would create
//! the field as the wrong type on an empty target, and every later live write of the
//! right type would then be refused there. So the type comes from the source's schema;
//! only a field stored with different types in different shards falls back to the
//! value's own look.

use crate::verify::digest::FieldTypes;
use crate::verify::json::{Kind, Scalar, Series, Visitor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldType {
    Float,
    Integer,
    Unsigned,
    String,
    Boolean,
    /// Several types across shards (`SHOW FIELD KEYS` lists the field more than once).
    Mixed {
        integer: bool,
        unsigned: bool,
    },
}

impl FieldType {
    fn of(declared: &str) -> FieldType {
        match declared {
            "float" => FieldType::Float,
            "integer" => FieldType::Integer,
            "unsigned" => FieldType::Unsigned,
            "string" => FieldType::String,
            "boolean" => FieldType::Boolean,
            other => FieldType::Mixed {
                integer: other.split('+').any(|t| t == "integer"),
                unsigned: other.split('+').any(|t| t == "unsigned"),
            },
        }
    }
}

/// Where finished chunks of line protocol go: `(body, points)`. An `Err` stops the
/// answer being read.
pub type Sink<'s> = dyn FnMut(Vec<u8>, usize) -> Result<(), String> + 's;

/// A [`Visitor`] writing every row as a line, handing the lines on in chunks of about
/// `chunk_bytes`.
pub struct LineWriter<'a, 's> {
    types: &'a FieldTypes,
    chunk_bytes: usize,
    sink: &'a mut Sink<'s>,
    /// Escaped measurement and sorted tags of the current series.
    key: Vec<u8>,
    time_column: usize,
    /// Field columns: index, escaped key, type.
    fields: Vec<(usize, Vec<u8>, FieldType)>,
    body: Vec<u8>,
    points: usize,
    /// Points and bytes handed to the sink so far.
    total_points: u64,
    total_bytes: u64,
    /// Points no line protocol can carry (a newline in a name), left out.
    skipped: u64,
}

impl<'a, 's> LineWriter<'a, 's> {
    pub fn new(
        types: &'a FieldTypes,
        chunk_bytes: usize,
        sink: &'a mut Sink<'s>,
    ) -> LineWriter<'a, 's> {
        LineWriter {
            types,
            chunk_bytes,
            sink,
            key: Vec::new(),
            time_column: usize::MAX,
            fields: Vec::new(),
            body: Vec::with_capacity(chunk_bytes + 4096),
            points: 0,
            total_points: 0,
            total_bytes: 0,
            skipped: 0,
        }
    }

    /// Hand on what is left: `(points, bytes, skipped)` over the whole answer.
    pub fn finish(mut self) -> Result<(u64, u64, u64), String> {
        self.flush()?;
        Ok((self.total_points, self.total_bytes, self.skipped))
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.points == 0 {
            return Ok(());
        }
        let body = std::mem::replace(&mut self.body, Vec::with_capacity(self.chunk_bytes + 4096));
        self.total_points += self.points as u64;
        self.total_bytes += body.len() as u64;
        let points = std::mem::take(&mut self.points);
        (self.sink)(body, points)
    }
}

/// Append `text` with the characters line protocol reserves in that position escaped:
/// `,` and space everywhere, `=` also in tag keys, tag values and field keys. `false`
/// when it holds a newline, which no position can carry.
fn escape(out: &mut Vec<u8>, text: &[u8], equals: bool) -> bool {
    for &b in text {
        match b {
            b'\n' | b'\r' => return false,
            b',' | b' ' => out.push(b'\\'),
            b'=' if equals => out.push(b'\\'),
            _ => {}
        }
        out.push(b);
    }
    true
}

impl Visitor for LineWriter<'_, '_> {
    fn series(&mut self, series: &Series<'_>) -> Result<(), String> {
        self.key.clear();
        self.fields.clear();
        self.time_column = usize::MAX;
        let name = series
            .name
            .map(|n| n.canonical().into_owned())
            .ok_or("a series without a name")?;
        let mut ok = escape(&mut self.key, &name, false);
        let tags = series.sorted_tags();
        for (k, v) in &tags {
            self.key.push(b',');
            ok &= escape(&mut self.key, k, true);
            self.key.push(b'=');
            ok &= escape(&mut self.key, v, true);
        }
        if !ok {
            // Marks the series: its rows are skipped and counted.
            self.key.clear();
        }
        for (i, column) in series.columns.iter().enumerate() {
            let name = column.canonical();
            if &*name == b"time" {
                self.time_column = i;
                continue;
            }
            let declared = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| self.types.get(n))
                .map_or("", String::as_str);
            let mut key = Vec::with_capacity(name.len() + 2);
            if escape(&mut key, &name, true) {
                self.fields.push((i, key, FieldType::of(declared)));
            }
        }
        if self.time_column == usize::MAX {
            return Err("an answer without a time column: is this a SELECT?".into());
        }
        Ok(())
    }

    fn row(&mut self, row: &[Scalar<'_>]) -> Result<(), String> {
        let time = row
            .get(self.time_column)
            .filter(|t| t.kind == Kind::Number)
            .ok_or("a point without a numeric time: the query must ask for epoch=ns")?;
        if self.key.is_empty() {
            self.skipped += 1;
            return Ok(());
        }
        let start = self.body.len();
        self.body.extend_from_slice(&self.key);
        let mut sep = b' ';
        for (i, key, declared) in &self.fields {
            let Some(value) = row.get(*i).filter(|v| v.kind != Kind::Null) else {
                continue;
            };
            self.body.push(sep);
            sep = b',';
            self.body.extend_from_slice(key);
            self.body.push(b'=');
            put_value(&mut self.body, value, *declared);
        }
        if sep == b' ' {
            // No field holds a value: not a point.
            self.body.truncate(start);
            return Ok(());
        }
        self.body.push(b' ');
        self.body.extend_from_slice(time.raw);
        self.body.push(b'\n');
        self.points += 1;
        if self.body.len() >= self.chunk_bytes {
            self.flush()?;
        }
        Ok(())
    }
}

fn put_value(out: &mut Vec<u8>, value: &Scalar<'_>, declared: FieldType) {
    let written_as = match (declared, value.kind) {
        (_, Kind::String) => FieldType::String,
        (_, Kind::Bool) => FieldType::Boolean,
        (FieldType::Mixed { integer, unsigned }, _) => {
            let whole = value.raw.iter().all(|b| b.is_ascii_digit() || *b == b'-');
            match (whole, integer, unsigned) {
                (true, true, _) => FieldType::Integer,
                (true, false, true) if value.raw.first() != Some(&b'-') => FieldType::Unsigned,
                _ => FieldType::Float,
            }
        }
        (declared, _) => declared,
    };
    match written_as {
        FieldType::String => {
            out.push(b'"');
            for &b in value.canonical().iter() {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        }
        FieldType::Integer => {
            out.extend_from_slice(value.raw);
            out.push(b'i');
        }
        FieldType::Unsigned => {
            out.extend_from_slice(value.raw);
            out.push(b'u');
        }
        // A number without a suffix is a float in line protocol, `1` included.
        FieldType::Float | FieldType::Boolean | FieldType::Mixed { .. } => {
            out.extend_from_slice(value.raw)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::json::walk;

    fn lines(types: &[(&str, &str)], answer: &str, chunk: usize) -> Vec<String> {
        let types: FieldTypes = types
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut chunks = Vec::new();
        let mut sink = |body: Vec<u8>, _points: usize| {
            chunks.push(String::from_utf8(body).unwrap_or_default());
            Ok(())
        };
        let mut writer = LineWriter::new(&types, chunk, &mut sink);
        assert_eq!(walk(answer.as_bytes(), &mut writer), Ok(()));
        assert!(writer.finish().is_ok());
        chunks
    }

    #[test]
    fn each_field_is_written_in_its_declared_type() {
        let answer = r#"{"results":[{"series":[{"name":"cpu load","tags":{"host":"a,b","dc":"","k=y":"v w"},"columns":["time","f","i","u","s","b"],"values":[[10,1,2,3,"say \"hi\" \\o/",true],[20,2.5,null,null,null,false]]}]}]}"#;
        let got = lines(
            &[
                ("f", "float"),
                ("i", "integer"),
                ("u", "unsigned"),
                ("s", "string"),
                ("b", "boolean"),
            ],
            answer,
            1 << 20,
        );
        assert_eq!(
            got,
            [concat!(
                "cpu\\ load,host=a\\,b,k\\=y=v\\ w f=1,i=2i,u=3u,s=\"say \\\"hi\\\" \\\\o/\",b=true 10\n",
                "cpu\\ load,host=a\\,b,k\\=y=v\\ w f=2.5,b=false 20\n"
            )]
        );
    }

    #[test]
    fn chunks_end_on_line_boundaries_near_the_size_asked() {
        let rows: Vec<String> = (0..10).map(|t| format!("[{t},{t}]")).collect();
        let answer = format!(
            r#"{{"results":[{{"series":[{{"name":"m","columns":["time","v"],"values":[{}]}}]}}]}}"#,
            rows.join(",")
        );
        let got = lines(&[("v", "integer")], &answer, 20);
        assert!(got.len() > 1);
        assert!(got.iter().all(|c| c.ends_with('\n')));
        assert_eq!(got.concat().lines().count(), 10);
    }

    #[test]
    fn mixed_types_follow_the_value_and_names_with_newlines_are_skipped() {
        let answer = r#"{"results":[{"series":[{"name":"m","columns":["time","v"],"values":[[1,5],[2,5.5],[3,"x"]]},{"name":"bad\nname","columns":["time","v"],"values":[[1,1]]}]}]}"#;
        let got = lines(&[("v", "float+integer+string")], answer, 1 << 20);
        assert_eq!(got, ["m v=5i 1\nm v=5.5 2\nm v=\"x\" 3\n"]);
    }
}
