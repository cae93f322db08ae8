//! A few helpers for writing JSON by hand: the output is flat and small, so a builder
//! that appends `"key":value` pairs is all the tool needs.

use std::fmt::Write;

/// Builds one JSON object; keys are written in call order.
#[derive(Debug, Default)]
pub struct Obj {
    out: String,
}

impl Obj {
    pub fn new() -> Obj {
        Obj {
            out: String::from("{"),
        }
    }

    fn key(&mut self, k: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_str(&mut self.out, k);
        self.out.push(':');
    }

    pub fn u64(mut self, k: &str, v: u64) -> Obj {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    /// Finite numbers with three decimals; NaN and infinities (from a zero duration)
    /// become 0 so the output always parses.
    pub fn f64(mut self, k: &str, v: f64) -> Obj {
        self.key(k);
        let v = if v.is_finite() { v } else { 0.0 };
        let _ = write!(self.out, "{v:.3}");
        self
    }

    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        push_str(&mut self.out, v);
        self
    }

    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// Inserts already-rendered JSON (a nested object) under `k`.
    pub fn raw(mut self, k: &str, json: &str) -> Obj {
        self.key(k);
        self.out.push_str(json);
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a quoted JSON string.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_flat_and_nested_objects() {
        let inner = Obj::new().u64("503", 2).finish();
        let s = Obj::new()
            .str("id", "a\"b\\c\n")
            .u64("n", 7)
            .f64("r", 1.0 / 3.0)
            .f64("bad", f64::NAN)
            .bool("ok", true)
            .raw("errors", &inner)
            .finish();
        assert_eq!(
            s,
            r#"{"id":"a\"b\\c\n","n":7,"r":0.333,"bad":0.000,"ok":true,"errors":{"503":2}}"#
        );
        assert_eq!(Obj::new().finish(), "{}");
    }
}
