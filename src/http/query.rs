//! `/query`, sans-I/O: which statements change schema or data (they go to every
//! backend through the ordered queue, like writes) and which only read (they go to
//! one up-to-date backend), and the parameters every backend receives.

use super::write::query_pairs;

/// What a `/query` request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Only reads: `SELECT` without `INTO`, `SHOW`, `EXPLAIN`.
    Read,
    /// Changes schema or data: must reach every backend, in order with writes.
    Write,
}

/// Why a query is refused before any backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub &'static str);

/// Split `q` into statements (`;` outside quotes and comments) and classify them.
/// Returns the class and the number of statements.
pub fn classify(q: &str) -> Result<(Class, usize), QueryError> {
    let mut reads = 0;
    let mut writes = 0;
    for statement in statements(q) {
        let words: Vec<String> = leading_words(statement, 3);
        let Some(first) = words.first() else { continue };
        let is_read = match first.as_str() {
            "SELECT" => !has_into(statement),
            "SHOW" | "EXPLAIN" => true,
            _ => false,
        };
        if is_read {
            reads += 1;
        } else {
            writes += 1;
        }
    }
    match (reads, writes) {
        (0, 0) => Err(QueryError("missing required parameter \"q\"")),
        (_, 0) => Ok((Class::Read, reads)),
        (0, _) => Ok((Class::Write, writes)),
        _ => Err(QueryError(
            "a query may not mix statements that read with statements that change schema or data; send them separately",
        )),
    }
}

/// The statements of `q`, split at `;` outside quotes and comments, trimmed, empty
/// ones skipped.
fn statements(q: &str) -> impl Iterator<Item = &str> {
    let bytes = q.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                parts.push(&q[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&q[start.min(q.len())..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|s| !strip_comments(s).trim().is_empty())
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first `n` keywords of a statement, upper-cased, comments skipped.
fn leading_words(statement: &str, n: usize) -> Vec<String> {
    strip_comments(statement)
        .split_whitespace()
        .take(n)
        .map(|w| w.to_ascii_uppercase())
        .collect()
}

/// `SELECT … INTO …` writes: look for the keyword outside quotes.
fn has_into(statement: &str) -> bool {
    let mut in_quote: Option<char> = None;
    let mut word = String::new();
    let mut prev = '\0';
    for c in statement.chars().chain(std::iter::once(' ')) {
        match in_quote {
            Some(q) => {
                if c == q && prev != '\\' {
                    in_quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                in_quote = Some(c);
                word.clear();
            }
            None if c.is_alphanumeric() || c == '_' => word.push(c),
            None => {
                if word.eq_ignore_ascii_case("INTO") {
                    return true;
                }
                word.clear();
            }
        }
        prev = c;
    }
    false
}

/// The parameters of a `/query` request from its URL and (for a form-encoded POST)
/// its body, re-encoded as one query string for the backends.
///
/// `u` and `p` of the body are left out. InfluxDB reads credentials from the URL and
/// the `Authorization` header only, never from a form body, and so does the relay
/// (`http::auth`); moved into the URL they would become credentials the backend
/// prefers to any `Authorization`, whatever `forward-credentials` and `http-user` say.
/// The URL's own `u` and `p` have been dealt with by then, per the listener.
pub fn forward_params(url_query: &str, form_body: Option<&[u8]>) -> (String, Option<String>) {
    let mut out = String::with_capacity(url_query.len() + form_body.map_or(0, <[u8]>::len) + 1);
    let mut q = None;
    let body = form_body.map(String::from_utf8_lossy);
    let form = body.as_deref().into_iter().flat_map(query_pairs);
    let all = query_pairs(url_query).chain(form.filter(|(key, _)| key != "u" && key != "p"));
    for (key, value) in all {
        if key == "q" {
            q = Some(value.clone());
        }
        if !out.is_empty() {
            out.push('&');
        }
        super::write::percent_encode_into(&mut out, &key);
        out.push('=');
        super::write::percent_encode_into(&mut out, &value);
    }
    (out, q)
}

/// The answer for write statements that were spooled but not yet run anywhere: as
/// InfluxDB answers statements that return nothing.
pub fn empty_results(statements: usize) -> Vec<u8> {
    let mut out = b"{\"results\":[".to_vec();
    for i in 0..statements {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("{{\"statement_id\":{i}}}").as_bytes());
    }
    out.extend_from_slice(b"]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes() {
        let cases = [
            ("SELECT * FROM cpu", Ok((Class::Read, 1))),
            (
                "select mean(v) from m where time > now() - 1h group by time(1m)",
                Ok((Class::Read, 1)),
            ),
            ("SHOW DATABASES; SHOW MEASUREMENTS", Ok((Class::Read, 2))),
            ("EXPLAIN SELECT * FROM m", Ok((Class::Read, 1))),
            ("CREATE DATABASE x", Ok((Class::Write, 1))),
            (
                "DROP SERIES FROM m; DELETE FROM m WHERE time < 0",
                Ok((Class::Write, 2)),
            ),
            (
                "CREATE RETENTION POLICY r ON d DURATION 1d REPLICATION 1",
                Ok((Class::Write, 1)),
            ),
            ("SELECT * INTO m2 FROM m", Ok((Class::Write, 1))),
            ("SELECT \"into\" FROM m", Ok((Class::Read, 1))),
            (
                "SELECT * FROM m WHERE t = 'a;b INTO c'",
                Ok((Class::Read, 1)),
            ),
            ("GRANT ALL TO u", Ok((Class::Write, 1))),
            ("SET PASSWORD FOR u = 'p'", Ok((Class::Write, 1))),
            ("-- comment\nSHOW DATABASES;", Ok((Class::Read, 1))),
        ];
        for (q, want) in cases {
            assert_eq!(classify(q), want, "{q}");
        }
    }

    #[test]
    fn mixed_and_empty_are_refused() {
        assert!(classify("CREATE DATABASE x; SELECT * FROM m").is_err());
        assert!(classify("").is_err());
        assert!(classify(" ; ;").is_err());
    }

    #[test]
    fn form_body_params_join_the_url_ones() {
        let (fwd, q) = forward_params("db=a&epoch=ms", Some(b"q=SELECT+*+FROM+%22m%22"));
        assert_eq!(q.as_deref(), Some("SELECT * FROM \"m\""));
        assert_eq!(fwd, "db=a&epoch=ms&q=SELECT%20%2A%20FROM%20%22m%22");
    }

    #[test]
    fn credentials_in_a_form_body_are_not_forwarded() {
        let (fwd, q) = forward_params(
            "db=a&u=url-user&p=url-pw",
            Some(b"q=SHOW+DATABASES&u=form-user&%70=form-pw&pp=1"),
        );
        assert_eq!(q.as_deref(), Some("SHOW DATABASES"));
        assert_eq!(fwd, "db=a&u=url-user&p=url-pw&q=SHOW%20DATABASES&pp=1");
    }

    #[test]
    fn empty_results_shape() {
        assert_eq!(
            empty_results(2),
            b"{\"results\":[{\"statement_id\":0},{\"statement_id\":1}]}\n"
        );
    }
}
