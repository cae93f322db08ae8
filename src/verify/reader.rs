//! One backend, read directly: InfluxQL statements over the output's own HTTP client,
//! answers streamed line by line into a [`Visitor`], at a bounded pace.

use std::thread;
use std::time::{Duration, Instant};

use super::json::{self, Kind, Scalar, Series, Visitor};
use super::VerifyError;
use crate::backend::client::Client;
use crate::config::HttpOutput;

/// Longest line (one chunk of a chunked answer) held at once: 10 000 rows of even
/// wide points stay far below it; a larger one means a smaller `--chunk-size` is due.
const MAX_LINE: usize = 64 << 20;
/// How much of a failed answer's body is kept for the error message.
const MAX_ERROR_BODY: usize = 1024;

pub struct Reader {
    pub name: String,
    pub url: String,
    /// Statements sent so far.
    pub queries: u64,
    client: Client,
    query_path: String,
    /// `Authorization` value: the output's `http-user`/`http-pass`, else the
    /// `INFLUX_USERNAME`/`INFLUX_PASSWORD` environment, else none.
    auth: Option<String>,
    chunk_size: usize,
    /// Smallest time between the starts of two queries (the `--rate`).
    pace: Duration,
    last_start: Option<Instant>,
    /// The start of a line whose end has not arrived yet.
    line: Vec<u8>,
}

impl Reader {
    pub fn new(
        output: &HttpOutput,
        timeout: Duration,
        chunk_size: usize,
        pace: Duration,
    ) -> Result<Reader, VerifyError> {
        let tls = crate::tls::client_tls(output).map_err(|e| VerifyError::Setup(e.to_string()))?;
        let auth = match &output.basic_auth {
            Some(basic) => Some(basic.header_value()),
            None => match (
                std::env::var("INFLUX_USERNAME"),
                std::env::var("INFLUX_PASSWORD"),
            ) {
                (Ok(user), Ok(pass)) if !user.is_empty() => {
                    Some(crate::config::BasicAuth { user, pass }.header_value())
                }
                _ => None,
            },
        };
        Ok(Reader {
            name: output.name.clone(),
            url: output.location.url.clone(),
            queries: 0,
            client: Client::new(output.location.clone(), timeout, tls),
            query_path: crate::backend::query_path_of(&output.location.path),
            auth,
            chunk_size,
            pace,
            last_start: None,
            line: Vec::new(),
        })
    }

    fn error(&self, message: impl Into<String>) -> VerifyError {
        VerifyError::Backend {
            backend: self.name.clone(),
            url: self.url.clone(),
            message: message.into(),
        }
    }

    /// Run one statement and walk its answer into `visitor`.
    pub fn query(&mut self, statement: &str, visitor: &mut dyn Visitor) -> Result<(), VerifyError> {
        if let Some(last) = self.last_start {
            let due = last + self.pace;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        self.last_start = Some(Instant::now());
        self.queries += 1;
        let path = format!(
            "{}?q={}&epoch=ns&chunked=true&chunk_size={}",
            self.query_path,
            url_encode(statement),
            self.chunk_size
        );
        self.line.clear();
        let mut failure: Option<Result<(), json::ScanError>> = None;
        let mut error_body = Vec::new();
        let line = &mut self.line;
        let mut sink = |status: u16, bytes: &[u8]| -> bool {
            if status != 200 {
                let room = MAX_ERROR_BODY.saturating_sub(error_body.len());
                error_body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                return true;
            }
            if bytes.is_empty() {
                // The end of the answer: a last line without a newline.
                let last = json::walk(line, visitor);
                line.clear();
                if last.is_err() {
                    failure = Some(last);
                }
                return false;
            }
            let mut rest = bytes;
            while let Some(i) = memchr::memchr(b'\n', rest) {
                let walked = if line.is_empty() {
                    json::walk(&rest[..i], visitor)
                } else {
                    line.extend_from_slice(&rest[..i]);
                    let walked = json::walk(line, visitor);
                    line.clear();
                    walked
                };
                if walked.is_err() {
                    failure = Some(walked);
                    return false;
                }
                rest = &rest[i + 1..];
            }
            if line.len() + rest.len() > MAX_LINE {
                failure = Some(Err(json::ScanError::Rejected(format!(
                    "an answer chunk larger than {} MiB: pass a smaller --chunk-size",
                    MAX_LINE >> 20
                ))));
                return false;
            }
            line.extend_from_slice(rest);
            true
        };
        let status = self
            .client
            .get_streamed(&path, self.auth.as_deref().map(str::as_bytes), &mut sink)
            .map_err(|e| self.error(format!("{e}; check that it is up and reachable from here")))?;
        if status != 200 {
            let text = String::from_utf8_lossy(&error_body);
            let hint = match status {
                401 | 403 => {
                    "; give the output http-user and http-pass in the config, or set INFLUX_USERNAME and INFLUX_PASSWORD"
                }
                _ => "",
            };
            return Err(self.error(format!(
                "{statement}: answered {status}: {}{hint}",
                text.trim()
            )));
        }
        match failure {
            Some(Err(e)) => Err(self.error(format!("{statement}: {e}"))),
            _ => Ok(()),
        }
    }

    /// Run a statement that changes the schema (`CREATE DATABASE`, `CREATE RETENTION
    /// POLICY`): InfluxDB takes those only by `POST`. An error in the answer is an error.
    pub fn execute(&mut self, statement: &str) -> Result<(), VerifyError> {
        self.queries += 1;
        let query = format!("q={}", url_encode(statement));
        let answer = self
            .client
            .post(
                &self.query_path,
                &query,
                self.auth.as_deref().map(str::as_bytes),
                &[],
                false,
            )
            .map_err(|e| self.error(format!("{e}; check that it is up and reachable from here")))?;
        let text = String::from_utf8_lossy(&answer.body);
        if answer.status != 200 || text.contains("\"error\"") {
            return Err(self.error(format!(
                "{statement}: answered {}: {}",
                answer.status,
                text.trim()
            )));
        }
        Ok(())
    }

    /// `SHOW FIELD KEYS` of one measurement in one retention policy. A field stored
    /// with different types in different shards gets them joined with `+`.
    pub fn field_types(
        &mut self,
        db: &str,
        rp: &str,
        m: &str,
    ) -> Result<super::digest::FieldTypes, VerifyError> {
        let rows = self.rows(&format!(
            "SHOW FIELD KEYS ON {} FROM {}.{}",
            quote_ident(db),
            quote_ident(rp),
            quote_ident(m)
        ))?;
        let mut types = super::digest::FieldTypes::new();
        for row in &rows {
            let (Some(key), Some(kind)) = (row.get("fieldKey"), row.get("fieldType")) else {
                continue;
            };
            types
                .entry(key.to_string())
                .and_modify(|t: &mut String| {
                    t.push('+');
                    t.push_str(kind);
                })
                .or_insert_with(|| kind.to_string());
        }
        Ok(types)
    }

    /// A statement whose answer is small (`SHOW …`), as rows of cells by column.
    pub fn rows(&mut self, statement: &str) -> Result<Vec<Row>, VerifyError> {
        let mut collect = Collect::default();
        self.query(statement, &mut collect)?;
        Ok(collect.rows)
    }
}

/// One row of a `SHOW` answer: the cells by column name.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub cells: Vec<(String, Cell)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    /// Numbers and booleans as sent.
    Raw(String),
    Null,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.cells
            .iter()
            .find(|(c, _)| c == column)
            .and_then(|(_, v)| match v {
                Cell::Text(s) | Cell::Raw(s) => Some(s.as_str()),
                Cell::Null => None,
            })
    }
}

#[derive(Default)]
struct Collect {
    columns: Vec<String>,
    rows: Vec<Row>,
}

impl Visitor for Collect {
    fn series(&mut self, series: &Series<'_>) -> Result<(), String> {
        self.columns = series
            .columns
            .iter()
            .map(|c| c.text().into_owned())
            .collect();
        Ok(())
    }

    fn row(&mut self, row: &[Scalar<'_>]) -> Result<(), String> {
        let cells = self
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| {
                let cell = match v.kind {
                    Kind::String => Cell::Text(v.text().into_owned()),
                    Kind::Null => Cell::Null,
                    _ => Cell::Raw(v.text().into_owned()),
                };
                (c.clone(), cell)
            })
            .collect();
        self.rows.push(Row { cells });
        Ok(())
    }
}

/// Percent-encoding for a query-string value: everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An InfluxQL identifier in double quotes, with `\` and `"` escaped.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_query_strings_are_escaped() {
        assert_eq!(quote_ident(r#"a "b\c"#), r#""a \"b\\c""#);
        assert_eq!(url_encode("SHOW \"x\"&y=1"), "SHOW%20%22x%22%26y%3D1");
    }
}
