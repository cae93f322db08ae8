//! An order-independent digest of a set of points, folded one row at a time.
//!
//! Each point becomes a canonical byte string — its tags sorted by key (empty values
//! left out: InfluxDB stores no empty tag, `GROUP BY *` shows an absent one as `""`),
//! its timestamp, then its non-null fields sorted by name, each with the field's type
//! and value — hashed with SHA-256 truncated to 64 bits, and the hashes are summed.
//! A sum does not care in which order series or chunks arrive, and two backends agree
//! on it only if they hold the same points with the same values, give or take a 2⁻⁶⁴
//! chance.
//!
//! The type comes from `SHOW FIELD KEYS`, not from the value: InfluxDB 1.x writes the
//! float `1.0` as `1` in JSON, the same text as the integer `1`. Numbers keep the text
//! the backend sent, so `1` and `1.5` or `1e+21` and `1000000000000000000000` differ;
//! strings are compared decoded.

use std::collections::HashMap;

use super::json::{Kind, Scalar, Series, Visitor};

/// Points and their digest for one stretch of data on one backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub points: u64,
    /// Wrapping sum of the 64-bit hashes of the points.
    pub sum: u64,
}

impl Digest {
    pub fn add(&mut self, canonical_point: &[u8]) {
        let hash = ring::digest::digest(&ring::digest::SHA256, canonical_point);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_ref()[..8]);
        self.points += 1;
        self.sum = self.sum.wrapping_add(u64::from_le_bytes(first));
    }
}

/// Field name → type (`float`, `integer`, `string`, `boolean`) for one measurement in
/// one retention policy, from `SHOW FIELD KEYS`. A field whose type differs between
/// shards is listed more than once there; its types are joined with `+`.
pub type FieldTypes = HashMap<String, String>;

/// A [`Visitor`] for the answer of `SELECT * … GROUP BY *`, with `epoch=ns`.
pub struct Folder<'t> {
    types: &'t FieldTypes,
    pub digest: Digest,
    /// The canonical tags of the current series, the start of each of its points.
    series_prefix: Vec<u8>,
    time_column: usize,
    /// Columns holding fields, sorted by name, each with its canonical name and type.
    fields: Vec<(usize, Vec<u8>)>,
    point: Vec<u8>,
}

impl<'t> Folder<'t> {
    pub fn new(types: &'t FieldTypes) -> Folder<'t> {
        Folder {
            types,
            digest: Digest::default(),
            series_prefix: Vec::new(),
            time_column: usize::MAX,
            fields: Vec::new(),
            point: Vec::new(),
        }
    }
}

/// Length-prefixed, so no choice of names or values can make two different points
/// encode alike.
fn put(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl Visitor for Folder<'_> {
    fn series(&mut self, series: &Series<'_>) -> Result<(), String> {
        self.series_prefix.clear();
        for (k, v) in &series.sorted_tags() {
            put(&mut self.series_prefix, b'k', k);
            put(&mut self.series_prefix, b'v', v);
        }
        self.time_column = usize::MAX;
        self.fields.clear();
        let mut named: Vec<(Vec<u8>, usize)> = Vec::with_capacity(series.columns.len());
        for (i, column) in series.columns.iter().enumerate() {
            let name = column.canonical();
            if &*name == b"time" {
                self.time_column = i;
            } else {
                named.push((name.into_owned(), i));
            }
        }
        if self.time_column == usize::MAX {
            return Err("an answer without a time column: is this a SELECT?".into());
        }
        named.sort();
        for (name, i) in named {
            let field_type = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| self.types.get(n))
                .map_or("", String::as_str);
            let mut canonical = Vec::with_capacity(name.len() + 24);
            put(&mut canonical, b'f', &name);
            put(&mut canonical, b'y', field_type.as_bytes());
            self.fields.push((i, canonical));
        }
        Ok(())
    }

    fn row(&mut self, row: &[Scalar<'_>]) -> Result<(), String> {
        let time = row
            .get(self.time_column)
            .filter(|t| t.kind == Kind::Number)
            .ok_or("a point without a numeric time: the query must ask for epoch=ns")?;
        self.point.clear();
        self.point.extend_from_slice(&self.series_prefix);
        put(&mut self.point, b't', time.raw);
        for (i, canonical) in &self.fields {
            let Some(value) = row.get(*i).filter(|v| v.kind != Kind::Null) else {
                continue;
            };
            self.point.extend_from_slice(canonical);
            let kind = match value.kind {
                Kind::String => b's',
                Kind::Number => b'n',
                Kind::Bool => b'b',
                Kind::Null => b'0',
            };
            put(&mut self.point, kind, &value.canonical());
        }
        self.digest.add(&self.point);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::json::walk;
    use super::*;

    fn types(pairs: &[(&str, &str)]) -> FieldTypes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn digest_with(types: &FieldTypes, lines: &[&str]) -> Digest {
        let mut folder = Folder::new(types);
        for line in lines {
            walk(line.as_bytes(), &mut folder).unwrap();
        }
        folder.digest
    }

    fn digest(lines: &[&str]) -> Digest {
        digest_with(&types(&[("v", "float"), ("i", "integer")]), lines)
    }

    const A: &str = r#"{"results":[{"series":[{"name":"m","tags":{"h":"a"},"columns":["time","i","v"],"values":[[1,5,1.5],[2,6,null]]}]}]}"#;
    const B: &str = r#"{"results":[{"series":[{"name":"m","tags":{"h":"b"},"columns":["time","i","v"],"values":[[1,7,2.5]]}]}]}"#;

    #[test]
    fn order_of_series_rows_and_chunks_does_not_matter() {
        let one = digest(&[A, B]);
        assert_eq!(one.points, 3);
        assert_eq!(digest(&[B, A]), one);
        let rows_swapped = r#"{"results":[{"series":[{"name":"m","tags":{"h":"a"},"columns":["time","i","v"],"values":[[2,6,null],[1,5,1.5]]}]}]}"#;
        assert_eq!(digest(&[B, rows_swapped]), one);
        // Columns in another order, tags in another order.
        let reordered = r#"{"results":[{"series":[{"name":"m","tags":{"h":"b"},"columns":["v","time","i"],"values":[[2.5,1,7]]}]}]}"#;
        assert_eq!(digest(&[A, reordered]), one);
    }

    #[test]
    fn any_changed_value_changes_the_digest() {
        let base = digest(&[A]);
        for changed in [
            A.replace("[1,5,1.5]", "[1,5,1.25]"),
            A.replace("[1,5,1.5]", "[1,4,1.5]"),
            A.replace("[1,5,1.5]", "[3,5,1.5]"),
            A.replace("[2,6,null]", "[2,6,0]"),
            A.replace(r#""h":"a""#, r#""h":"c""#),
            A.replace(r#""h":"a""#, r#""g":"a""#),
            A.replace(r#""i","v""#, r#""j","v""#),
        ] {
            let d = digest(&[&changed]);
            assert_eq!(d.points, base.points, "{changed}");
            assert_ne!(d, base, "{changed}");
        }
    }

    #[test]
    fn field_types_count_even_when_the_text_is_the_same() {
        let line =
            r#"{"results":[{"series":[{"name":"m","columns":["time","v"],"values":[[1,1]]}]}]}"#;
        let as_float = digest_with(&types(&[("v", "float")]), &[line]);
        let as_integer = digest_with(&types(&[("v", "integer")]), &[line]);
        assert_ne!(as_float, as_integer);
        // And the text itself counts too: 1 is not 1.0 nor "1" nor true.
        let base = digest_with(&types(&[("v", "float")]), &[line]);
        for other in ["1.0", "\"1\"", "true"] {
            let text = line.replace("[1,1]", &format!("[1,{other}]"));
            assert_ne!(
                digest_with(&types(&[("v", "float")]), &[&text]),
                base,
                "{other}"
            );
        }
    }

    #[test]
    fn tags_are_canonical() {
        // An absent tag shown as "" is no tag; escapes are decoded before hashing.
        let plain = r#"{"results":[{"series":[{"name":"m","tags":{"h":"x\"y"},"columns":["time","v"],"values":[[1,1]]}]}]}"#;
        let with_empty = r#"{"results":[{"series":[{"name":"m","tags":{"a":"","h":"x\u0022y"},"columns":["time","v"],"values":[[1,1]]}]}]}"#;
        assert_eq!(digest(&[plain]), digest(&[with_empty]));
    }

    #[test]
    fn values_cannot_shift_between_names() {
        let one = r#"{"results":[{"series":[{"name":"m","tags":{"ab":"c"},"columns":["time","v"],"values":[[1,1]]}]}]}"#;
        let two = r#"{"results":[{"series":[{"name":"m","tags":{"a":"bc"},"columns":["time","v"],"values":[[1,1]]}]}]}"#;
        assert_ne!(digest(&[one]), digest(&[two]));
    }

    #[test]
    fn an_answer_without_time_is_refused() {
        let line = r#"{"results":[{"series":[{"name":"m","columns":["v"],"values":[[1]]}]}]}"#;
        let t = FieldTypes::new();
        let mut folder = Folder::new(&t);
        assert!(walk(line.as_bytes(), &mut folder).is_err());
    }
}
