//! A small JSON writer for the pages (no parser, no dependency): strings escaped,
//! objects and arrays written in order.

use super::*;

/// A JSON string literal (also used by `verify`'s report).
pub(crate) fn json_str(out: &mut String, s: &str) {
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

/// Members of one JSON object, commas handled.
pub(crate) struct Obj<'a> {
    pub(crate) out: &'a mut String,
    pub(crate) first: bool,
}

impl<'a> Obj<'a> {
    pub(crate) fn open(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    /// Write `"key":` and hand back the output for the value.
    pub(crate) fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json_str(self.out, key);
        self.out.push(':');
        self.out
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) {
        json_str(self.key(key), value);
    }

    pub(crate) fn bool(&mut self, key: &str, value: bool) {
        self.key(key).push_str(if value { "true" } else { "false" });
    }

    pub(crate) fn num(&mut self, key: &str, value: u64) {
        let _ = write!(self.key(key), "{value}");
    }

    /// Seconds, to the millisecond.
    pub(crate) fn secs(&mut self, key: &str, value: f64) {
        let _ = write!(self.key(key), "{value:.3}");
    }

    pub(crate) fn close(self) {
        self.out.push('}');
    }
}

pub(crate) fn json_array<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(&mut String, T),
) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

pub(super) fn json_page(ok: bool, body: String) -> Page {
    Page {
        status: if ok { 200 } else { 503 },
        content_type: JSON,
        body: body.into_bytes(),
    }
}
