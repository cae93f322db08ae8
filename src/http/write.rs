//! `POST /write`, sans-I/O: request checks and line protocol (README: HTTP API),
//! and the batch every backend will receive.

use crate::batch::Batch;
use crate::config::Precision;
use crate::lineproto;

/// Why a write is refused before any backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    pub status: u16,
    pub message: String,
}

fn bad_request(message: String) -> WriteError {
    WriteError {
        status: 400,
        message,
    }
}

/// What the listener adds to every write.
#[derive(Debug, Clone, Default)]
pub struct WriteSettings {
    pub default_retention_policy: Option<String>,
}

/// Check one write and build its batch. `Ok(None)`: nothing to forward (no points).
pub fn prepare(
    settings: &WriteSettings,
    query: &str,
    authorization: Option<Box<[u8]>>,
    body: Vec<u8>,
    now_ns: i64,
) -> Result<Option<Batch>, WriteError> {
    prepare_with(settings, query, authorization, body, None, now_ns)
}

/// [`prepare`] for a body the caller has already put through `lineproto::check_body`
/// (`info` is its answer): the line protocol is not checked a second time.
pub fn prepare_checked(
    settings: &WriteSettings,
    query: &str,
    authorization: Option<Box<[u8]>>,
    body: Vec<u8>,
    info: lineproto::BodyInfo,
    now_ns: i64,
) -> Result<Option<Batch>, WriteError> {
    prepare_with(settings, query, authorization, body, Some(info), now_ns)
}

fn prepare_with(
    settings: &WriteSettings,
    query: &str,
    authorization: Option<Box<[u8]>>,
    body: Vec<u8>,
    info: Option<lineproto::BodyInfo>,
    now_ns: i64,
) -> Result<Option<Batch>, WriteError> {
    let mut db = None;
    let mut rp = None;
    let mut precision = Precision::Nanoseconds;
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "db" => db = Some(value),
            "rp" => rp = Some(value),
            "precision" => {
                precision = Precision::parse(&value).ok_or_else(|| {
                    bad_request(format!(
                        "invalid precision {value:?} (use n, ns, u, us, µ, ms, s, m or h)"
                    ))
                })?
            }
            _ => {}
        }
    }
    if db.as_deref().is_none_or(str::is_empty) {
        return Err(bad_request("missing parameter: db".to_string()));
    }
    let info = match info {
        Some(info) => info,
        None => lineproto::check_body(&body)
            .map_err(|e| bad_request(format!("unable to parse points: {e}")))?,
    };
    if info.points == 0 {
        return Ok(None);
    }
    let body = if info.needs_rewrite {
        let mut out = Vec::with_capacity(body.len() + info.points * 20);
        lineproto::stamp_body(&body, precision.from_nanos(now_ns), &mut out);
        out
    } else {
        let mut body = body;
        // Queued writes are merged by concatenation: every body must end a line.
        if body.last() != Some(&b'\n') {
            body.push(b'\n');
        }
        body
    };
    let mut query = forwarded_query(query, precision);
    if rp.is_none() {
        if let Some(default) = &settings.default_retention_policy {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("rp=");
            percent_encode_into(&mut query, default);
        }
    }
    Ok(Some(Batch {
        kind: crate::batch::Kind::Write,
        query: query.into_boxed_str(),
        auth: authorization,
        body,
        points: info.points,
        seq: 0,
    }))
}

/// The client's query string as backends must see it: byte for byte, except that a
/// `precision` is written the one way InfluxDB 1.x understands (it silently reads
/// `us`, `µ` or `ns` as nanoseconds, which would shift every timestamp).
fn forwarded_query(query: &str, precision: Precision) -> String {
    let mut out = String::with_capacity(query.len() + 4);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('&');
        }
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if percent_decode(key) == "precision" {
            out.push_str("precision=");
            out.push_str(precision.as_query_value());
        } else {
            out.push_str(pair);
        }
    }
    out
}

/// Decoded `key=value` pairs of a query string (`+` is a space, `%XX` a byte).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub(crate) fn percent_encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rp: Option<&str>) -> WriteSettings {
        WriteSettings {
            default_retention_policy: rp.map(String::from),
        }
    }

    #[test]
    fn missing_db_is_400() {
        for q in ["", "db=", "precision=s", "db"] {
            let err = prepare(&settings(None), q, None, b"m v=1 1\n".to_vec(), 0).unwrap_err();
            assert_eq!(
                (err.status, err.message.as_str()),
                (400, "missing parameter: db"),
                "{q}"
            );
        }
    }

    #[test]
    fn bad_precision_is_named() {
        let err = prepare(
            &settings(None),
            "db=x&precision=days",
            None,
            b"m v=1\n".to_vec(),
            0,
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("\"days\""), "{}", err.message);
    }

    #[test]
    fn default_rp_is_added_only_when_absent() {
        let b = prepare(
            &settings(Some("one week")),
            "db=x",
            None,
            b"m v=1 1\n".to_vec(),
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(&*b.query, "db=x&rp=one%20week");
        let b = prepare(
            &settings(Some("w")),
            "db=x&rp=y",
            None,
            b"m v=1 1\n".to_vec(),
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(&*b.query, "db=x&rp=y");
    }

    #[test]
    fn empty_body_forwards_nothing() {
        assert_eq!(
            prepare(&settings(None), "db=x", None, b"\n# c\n".to_vec(), 0)
                .unwrap()
                .map(|b| b.points),
            None
        );
    }

    #[test]
    fn precision_is_forwarded_as_influxdb_reads_it() {
        for (given, sent) in [
            ("us", "u"),
            ("%C2%B5", "u"),
            ("ns", "n"),
            ("ms", "ms"),
            ("h", "h"),
        ] {
            let q = format!("db=x&precision={given}&u=a");
            let b = prepare(&settings(None), &q, None, b"m v=1 1\n".to_vec(), 0)
                .unwrap()
                .unwrap();
            assert_eq!(&*b.query, format!("db=x&precision={sent}&u=a"), "{given}");
        }
        let b = prepare(
            &settings(None),
            "db=x&p=%26",
            None,
            b"m v=1 1\n".to_vec(),
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(&*b.query, "db=x&p=%26");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
