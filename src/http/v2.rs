//! `POST /api/v2/write`, sans-I/O (README: InfluxDB 2.x and 3.x): the 2.x parameters
//! checked and turned into the 1.x query string every batch carries, so the write then
//! goes the way a `/write` goes (`write::prepare`: line protocol checks, stamping).
//!
//! The bucket is read as InfluxDB 1.8's 2.x compatibility reads it: `db/rp`, or `db`
//! for the default retention policy. `org` (or `orgID`) must be given, as InfluxDB 2
//! requires, but names nothing here: the relay has no organisations.

use crate::batch::Batch;
use crate::http::write::{self, percent_encode_into, query_pairs, WriteError, WriteSettings};

fn invalid(message: String) -> WriteError {
    WriteError {
        status: 400,
        message,
    }
}

/// A bucket or 3.x database name as database and retention policy: `db/rp` or `db`
/// (`db/` is `db` too). Refused: an empty database, and more than one `/`.
pub fn split_bucket(bucket: &str) -> Result<(&str, Option<&str>), String> {
    let (db, rp) = match bucket.split_once('/') {
        Some((db, rp)) => (db, Some(rp).filter(|rp| !rp.is_empty())),
        None => (bucket, None),
    };
    if db.is_empty() {
        return Err(format!(
            "invalid bucket {bucket:?}: name a database, as \"db\" or \"db/rp\""
        ));
    }
    if rp.is_some_and(|rp| rp.contains('/')) {
        return Err(format!(
            "invalid bucket {bucket:?}: at most one \"/\", between database and retention policy"
        ));
    }
    Ok((db, rp))
}

/// `db=…[&rp=…]` for a database and retention policy, percent-encoded.
pub(crate) fn db_rp_query(out: &mut String, db: &str, rp: Option<&str>) {
    out.push_str("db=");
    percent_encode_into(out, db);
    if let Some(rp) = rp {
        out.push_str("&rp=");
        percent_encode_into(out, rp);
    }
}

/// The 1.x query string for a 2.x write's query string: `db`, `rp` when the bucket
/// names one, and `precision` as 1.x spells it.
pub fn canonical_query(query: &str) -> Result<String, WriteError> {
    let mut org = None;
    let mut bucket = None;
    let mut precision = None;
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "org" | "orgID" if !value.is_empty() => org = Some(value),
            "bucket" => bucket = Some(value),
            "precision" => precision = Some(value),
            _ => {}
        }
    }
    if org.is_none() {
        return Err(invalid(
            "missing parameter: org (or orgID); any name will do, e.g. org=-".to_string(),
        ));
    }
    let bucket = bucket
        .filter(|b| !b.is_empty())
        .ok_or_else(|| invalid("missing parameter: bucket (\"db\" or \"db/rp\")".to_string()))?;
    let (db, rp) = split_bucket(&bucket).map_err(invalid)?;
    let precision = match precision.as_deref() {
        None | Some("") | Some("ns") => "n",
        Some("us") => "u",
        Some("ms") => "ms",
        Some("s") => "s",
        Some(other) => {
            return Err(invalid(format!(
                "invalid precision {other:?} (use ns, us, ms or s)"
            )))
        }
    };
    let mut out = String::with_capacity(bucket.len() + 24);
    db_rp_query(&mut out, db, rp);
    out.push_str("&precision=");
    out.push_str(precision);
    Ok(out)
}

/// Check one 2.x write and build its batch. `Ok(None)`: nothing to forward.
pub fn prepare(
    settings: &WriteSettings,
    query: &str,
    authorization: Option<Box<[u8]>>,
    body: Vec<u8>,
    now_ns: i64,
) -> Result<Option<Batch>, WriteError> {
    let query = canonical_query(query)?;
    write::prepare(settings, &query, authorization, body, now_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_become_db_and_rp() {
        for (query, want) in [
            ("org=-&bucket=db", "db=db&precision=n"),
            (
                "orgID=1&bucket=db%2Frp&precision=s",
                "db=db&rp=rp&precision=s",
            ),
            ("org=o&bucket=db/&precision=us", "db=db&precision=u"),
            (
                "org=o&bucket=my+db/one+week&precision=ms",
                "db=my%20db&rp=one%20week&precision=ms",
            ),
        ] {
            assert_eq!(canonical_query(query).unwrap(), want, "{query}");
        }
    }

    #[test]
    fn rejections_say_what_to_send() {
        for (query, fragment) in [
            ("bucket=db", "missing parameter: org"),
            ("org=&bucket=db", "missing parameter: org"),
            ("org=o", "missing parameter: bucket"),
            ("org=o&bucket=", "missing parameter: bucket"),
            ("org=o&bucket=/rp", "invalid bucket \"/rp\""),
            ("org=o&bucket=a/b/c", "at most one \"/\""),
            ("org=o&bucket=db&precision=m", "invalid precision \"m\""),
            ("org=o&bucket=db&precision=n", "invalid precision \"n\""),
        ] {
            let err = canonical_query(query).unwrap_err();
            assert_eq!(err.status, 400, "{query}");
            assert!(err.message.contains(fragment), "{query}: {}", err.message);
        }
    }

    #[test]
    fn the_write_is_checked_like_a_1x_write() {
        let settings = WriteSettings {
            default_retention_policy: Some("week".to_string()),
        };
        let batch = prepare(
            &settings,
            "org=-&bucket=db&precision=s",
            None,
            b"m v=1\n".to_vec(),
            1_700_000_000_123_456_789,
        )
        .unwrap()
        .unwrap();
        assert_eq!(&*batch.query, "db=db&precision=s&rp=week");
        assert_eq!(batch.body, b"m v=1 1700000000\n");
        let err = prepare(
            &settings,
            "org=-&bucket=db",
            None,
            b"m v=1 1\nm\n".to_vec(),
            0,
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("line 2"), "{}", err.message);
    }
}
