//! `POST /api/v3/write_lp`, sans-I/O (README: InfluxDB 2.x and 3.x): the 3.x
//! parameters checked and turned into the 1.x query string every batch carries.
//!
//! What the relay does with each parameter:
//! - `db`: a database, or `db/rp` as InfluxDB 3 allows for 1.x compatibility.
//! - `precision`: `auto` (the default), `nanosecond`, `microsecond`, `millisecond`,
//!   `second`, or their short forms. Under `auto` each timestamp's unit is guessed from
//!   its size as InfluxDB 3 does, and the write is forwarded in nanoseconds.
//! - `accept_partial` (default `true`): as in InfluxDB 3, the valid lines are written
//!   and the client is answered 400 with the rejected lines listed under `data` once
//!   they are acknowledged; `false` refuses the whole write on the first bad line.
//! - `no_sync` (default `false`): checked, then ignored. In InfluxDB 3 it answers before
//!   the write-ahead log is on disk; the relay answers by its `ack` rule (delivered or
//!   spooled), and a faster, weaker answer is not something it can give for a backend.

use crate::batch::Batch;
use crate::http::api::{v3_rejected_body, RejectedLine};
use crate::http::v2::{db_rp_query, split_bucket};
use crate::http::write::{self, query_pairs, WriteSettings};
use crate::lineproto;

/// A refused write: status and the 3.x body to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub body: Vec<u8>,
}

fn invalid(message: &str) -> Refused {
    Refused {
        status: 400,
        body: crate::http::api::error_body(crate::http::api::Api::V3, 400, message),
    }
}

/// A checked 3.x write.
#[derive(Debug)]
pub struct Prepared {
    /// `None`: nothing to forward.
    pub batch: Option<Batch>,
    /// Lines dropped under `accept_partial`: the 400 body the client gets instead of
    /// 204 once the rest is acknowledged.
    pub partial: Option<Vec<u8>>,
}

/// What a 3.x query string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The 1.x query string: `db`, `rp`, `precision`.
    pub query: String,
    /// `precision=auto`: every timestamp's unit is guessed.
    pub auto: bool,
    pub accept_partial: bool,
}

fn boolean(key: &str, value: &str) -> Result<bool, Refused> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(&format!(
            "invalid {key} {value:?} (use true or false)"
        ))),
    }
}

pub fn params(query: &str) -> Result<Params, Refused> {
    let mut db = None;
    let mut precision = None;
    let mut accept_partial = true;
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "db" => db = Some(value),
            "precision" => precision = Some(value),
            "accept_partial" => accept_partial = boolean(&key, &value)?,
            // Accepted for what it says; see the module doc.
            "no_sync" => {
                boolean(&key, &value)?;
            }
            _ => {}
        }
    }
    let db = db
        .filter(|d| !d.is_empty())
        .ok_or_else(|| invalid("missing parameter: db"))?;
    let (name, rp) = split_bucket(&db).map_err(|m| invalid(&m))?;
    let (unit, auto) = match precision.as_deref() {
        None | Some("") | Some("auto") => ("n", true),
        Some("nanosecond" | "ns" | "n") => ("n", false),
        Some("microsecond" | "us" | "u") => ("u", false),
        Some("millisecond" | "ms") => ("ms", false),
        Some("second" | "s") => ("s", false),
        Some(other) => {
            return Err(invalid(&format!(
                "invalid precision {other:?} (use auto, nanosecond, microsecond, millisecond or second)"
            )))
        }
    };
    let mut out = String::with_capacity(db.len() + 24);
    db_rp_query(&mut out, name, rp);
    out.push_str("&precision=");
    out.push_str(unit);
    Ok(Params {
        query: out,
        auto,
        accept_partial,
    })
}

/// Check one 3.x write and build its batch.
pub fn prepare(
    settings: &WriteSettings,
    query: &str,
    authorization: Option<Box<[u8]>>,
    body: Vec<u8>,
    now_ns: i64,
) -> Result<Prepared, Refused> {
    let params = params(query)?;
    let (body, partial, info) = match lineproto::check_body(&body) {
        Ok(info) => (body, None, info),
        Err(e) if !params.accept_partial => {
            return Err(Refused {
                status: 400,
                body: v3_rejected_body(
                    "parsing failed for write_lp endpoint",
                    &[rejected(&body, e.line, e.reason)],
                ),
            })
        }
        Err(_) => {
            let (valid, lines) = drop_invalid_lines(&body);
            let partial = v3_rejected_body("partial write of line protocol occurred", &lines);
            // The valid lines pass on their own; only a line that split differently
            // alone could fail, and then the whole write is refused.
            let info = lineproto::check_body(&valid)
                .map_err(|e| invalid(&format!("unable to parse points: {e}")))?;
            (valid, Some(partial), info)
        }
    };
    let body = if params.auto {
        let mut out = Vec::with_capacity(body.len() + body.len() / 8);
        lineproto::rescale_timestamps(&body, &mut out, |ts| {
            ts.checked_mul(lineproto::auto_unit_nanos(ts))
        })
        .map_err(|e| invalid(&e.to_string()))?;
        out
    } else {
        body
    };
    // The body was checked above, once: rescaling keeps every line (one out per line
    // in) and so every point, and `info` still holds.
    let batch = write::prepare_checked(settings, &params.query, authorization, body, info, now_ns)
        .map_err(|e| Refused {
            status: e.status,
            body: crate::http::api::error_body(crate::http::api::Api::V3, e.status, &e.message),
        })?;
    if batch.is_none() {
        if let Some(body) = partial {
            // Not one line was valid: nothing to wait for.
            return Err(Refused { status: 400, body });
        }
    }
    Ok(Prepared { batch, partial })
}

/// The line starting on physical line `number` of `body`, as a rejection.
fn rejected(body: &[u8], number: usize, reason: lineproto::Reason) -> RejectedLine {
    let text = lineproto::split_lines(body)
        .find(|l| l.number == number)
        .map(|l| String::from_utf8_lossy(l.text()).into_owned())
        .unwrap_or_default();
    RejectedLine {
        line_number: number,
        original_line: text,
        error_message: reason.as_str().to_string(),
    }
}

/// The valid lines of `body`, and the others as rejections.
fn drop_invalid_lines(body: &[u8]) -> (Vec<u8>, Vec<RejectedLine>) {
    let mut valid = Vec::with_capacity(body.len());
    let mut lines = Vec::new();
    for line in lineproto::split_lines(body) {
        match lineproto::check_line(line.text()) {
            Ok(_) => {
                valid.extend_from_slice(line.text());
                valid.push(b'\n');
            }
            Err(reason) => lines.push(RejectedLine {
                line_number: line.number,
                original_line: String::from_utf8_lossy(line.text()).into_owned(),
                error_message: reason.as_str().to_string(),
            }),
        }
    }
    (valid, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WriteSettings {
        WriteSettings::default()
    }

    fn text(r: &Refused) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    #[test]
    fn parameters_become_the_1x_query() {
        for (query, want) in [
            ("db=x", "db=x&precision=n"),
            ("db=x/rp&precision=second", "db=x&rp=rp&precision=s"),
            (
                "db=x&precision=millisecond&no_sync=true",
                "db=x&precision=ms",
            ),
            (
                "db=x&precision=microsecond&accept_partial=false",
                "db=x&precision=u",
            ),
            ("db=x&precision=ns", "db=x&precision=n"),
        ] {
            assert_eq!(params(query).unwrap().query, want, "{query}");
        }
        assert!(params("db=x").unwrap().auto);
        assert!(params("db=x&precision=auto").unwrap().auto);
        assert!(!params("db=x&accept_partial=false").unwrap().accept_partial);
    }

    #[test]
    fn rejections_are_in_the_3x_shape() {
        for (query, fragment) in [
            ("", "missing parameter: db"),
            ("db=", "missing parameter: db"),
            ("db=/rp", "invalid bucket"),
            ("db=x&precision=h", "invalid precision \\\"h\\\""),
            ("db=x&accept_partial=yes", "invalid accept_partial"),
            ("db=x&no_sync=1", "invalid no_sync"),
        ] {
            let err = params(query).unwrap_err();
            assert_eq!(err.status, 400);
            let t = text(&err);
            assert!(t.starts_with("{\"error\":\""), "{t}");
            assert!(t.contains(fragment), "{query}: {t}");
        }
    }

    #[test]
    fn auto_precision_forwards_nanoseconds() {
        let s = 1_700_000_000i64;
        let body = format!(
            "m v=1 {s}\nm v=2 {}\nm v=3 {}\nm v=4\n",
            s * 1000,
            s * 1_000_000_000
        );
        let p = prepare(&settings(), "db=x", None, body.into_bytes(), 42).unwrap();
        let batch = p.batch.unwrap();
        assert_eq!(&*batch.query, "db=x&precision=n");
        let want = format!(
            "m v=1 {0}\nm v=2 {0}\nm v=3 {0}\nm v=4 42\n",
            s * 1_000_000_000
        );
        assert_eq!(String::from_utf8(batch.body).unwrap(), want);
        assert!(p.partial.is_none());
    }

    #[test]
    fn a_fixed_precision_leaves_the_body_alone() {
        let p = prepare(
            &settings(),
            "db=x&precision=second",
            None,
            b"m v=1 5\n".to_vec(),
            0,
        )
        .unwrap();
        assert_eq!(p.batch.unwrap().body, b"m v=1 5\n");
    }

    #[test]
    fn partial_writes_keep_the_valid_lines() {
        let body = b"m v=1 1\nbad\nm v=2 2\nm v=\n".to_vec();
        let p = prepare(&settings(), "db=x&precision=s", None, body.clone(), 0).unwrap();
        let batch = p.batch.unwrap();
        assert_eq!(batch.body, b"m v=1 1\nm v=2 2\n");
        assert_eq!(batch.points, 2);
        let partial = String::from_utf8(p.partial.unwrap()).unwrap();
        assert!(partial.starts_with(r#"{"error":"partial write of line protocol occurred","data":[{"original_line":"bad","line_number":2,"#), "{partial}");
        assert!(partial.contains(r#""line_number":4"#), "{partial}");

        let err = prepare(
            &settings(),
            "db=x&precision=s&accept_partial=false",
            None,
            body,
            0,
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
        let t = text(&err);
        assert!(
            t.contains(r#""line_number":2"#) && t.contains("missing fields"),
            "{t}"
        );

        let err = prepare(&settings(), "db=x", None, b"bad\n".to_vec(), 0).unwrap_err();
        assert!(text(&err).contains("partial write"), "{}", text(&err));
    }
}
