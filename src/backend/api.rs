//! A batch as a 2.x or 3.x backend must receive it (README: InfluxDB 2.x and 3.x).
//!
//! Every batch carries one form whatever API it came in on: the 1.x query string (`db`,
//! `rp`, `precision` as 1.x spells it, maybe `u`/`p`). It is translated here, at send
//! time, for the output's API, so the queue and the spool never hold anything API
//! specific and a spooled write replays in whatever API its backend speaks now.
//!
//! - database and retention policy → `bucket=db/rp` (2.x) or `db=db/rp` (3.x), just
//!   `db` without a retention policy;
//! - precision `n u ms s` → `ns us ms s` (2.x) or `nanosecond …` (3.x); `m` and `h`,
//!   which neither has, → seconds, every timestamp multiplied by 60 or 3600;
//! - `u`/`p` (a 1.x client's credentials) → `Authorization: Token u:p`, the form
//!   InfluxDB 1.8+'s 2.x API reads, when the output sends no credentials of its own
//!   and the client sent no header.

use crate::config::{HttpOutput, OutputApi, V2_WRITE_PATH, V3_WRITE_PATH};
use crate::http::write::{percent_encode_into, query_pairs};

/// Where an output answers 1.x `/query` requests: beside its `/write` for a 1.x output
/// (`super::query_path_of`), and at `/query` under the same prefix for 2.x and 3.x
/// outputs, whose 1.x compatibility endpoint it is (`/api/v2/query` is Flux).
pub fn query_path(output: &HttpOutput) -> String {
    let path = &output.location.path;
    let prefix = match output.api {
        OutputApi::V1 => return super::query_path_of(path),
        OutputApi::V2 { .. } => path.strip_suffix(V2_WRITE_PATH),
        OutputApi::V3 => path.strip_suffix(V3_WRITE_PATH),
    };
    format!("{}/query", prefix.unwrap_or(""))
}

/// What a write becomes for a 2.x or 3.x backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub query: String,
    /// Multiply every timestamp by this first (minutes or hours into seconds).
    pub scale: Option<i64>,
    /// `Token u:p` from the 1.x query's credentials.
    pub authorization: Option<String>,
}

/// Translate a batch's query string for `api` (2.x or 3.x). `Err` only for a query the
/// relay itself could not have built (no `db`).
pub fn translate(api: &OutputApi, query: &str) -> Result<Translated, String> {
    let mut db = None;
    let mut rp = None;
    let mut precision = String::from("n");
    let mut user = None;
    let mut pass = None;
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "db" => db = Some(value),
            "rp" if !value.is_empty() => rp = Some(value),
            "precision" => precision = value,
            "u" if !value.is_empty() => user = Some(value),
            "p" if !value.is_empty() => pass = Some(value),
            _ => {}
        }
    }
    let db = db
        .filter(|d| !d.is_empty())
        .ok_or("write without a database")?;
    let (unit, scale) = match precision.as_str() {
        "u" => ("u", None),
        "ms" => ("ms", None),
        "s" => ("s", None),
        "m" => ("s", Some(60)),
        "h" => ("s", Some(3600)),
        _ => ("n", None),
    };
    let mut out = String::with_capacity(db.len() + rp.as_ref().map_or(0, String::len) + 48);
    let mut bucket = db;
    if let Some(rp) = rp {
        bucket.push('/');
        bucket.push_str(&rp);
    }
    match api {
        OutputApi::V2 { org } => {
            out.push_str("org=");
            percent_encode_into(&mut out, org);
            out.push_str("&bucket=");
            percent_encode_into(&mut out, &bucket);
            out.push_str("&precision=");
            out.push_str(match unit {
                "u" => "us",
                "ms" => "ms",
                "s" => "s",
                _ => "ns",
            });
        }
        OutputApi::V3 => {
            out.push_str("db=");
            percent_encode_into(&mut out, &bucket);
            out.push_str("&precision=");
            out.push_str(match unit {
                "u" => "microsecond",
                "ms" => "millisecond",
                "s" => "second",
                _ => "nanosecond",
            });
        }
        OutputApi::V1 => return Err("a 1.x output needs no translation".to_string()),
    }
    let authorization = match (user, pass) {
        (Some(u), Some(p)) => Some(format!("Token {u}:{p}")),
        _ => None,
    };
    Ok(Translated {
        query: out,
        scale,
        authorization,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> OutputApi {
        OutputApi::V2 {
            org: "my org".to_string(),
        }
    }

    #[test]
    fn databases_become_buckets() {
        let t = translate(&v2(), "db=x&rp=one%20week&precision=u&u=a&p=b%26").unwrap();
        assert_eq!(t.query, "org=my%20org&bucket=x%2Fone%20week&precision=us");
        assert_eq!(t.scale, None);
        assert_eq!(t.authorization.as_deref(), Some("Token a:b&"));
        let t = translate(&OutputApi::V3, "db=x&precision=ms&consistency=all").unwrap();
        assert_eq!(t.query, "db=x&precision=millisecond");
        assert_eq!(t.authorization, None);
        let t = translate(&OutputApi::V3, "db=x&rp=r").unwrap();
        assert_eq!(t.query, "db=x%2Fr&precision=nanosecond");
    }

    #[test]
    fn every_precision_has_a_name_or_a_scale() {
        for (given, v2_name, v3_name, scale) in [
            ("n", "ns", "nanosecond", None),
            ("u", "us", "microsecond", None),
            ("ms", "ms", "millisecond", None),
            ("s", "s", "second", None),
            ("m", "s", "second", Some(60)),
            ("h", "s", "second", Some(3600)),
        ] {
            let t = translate(&v2(), &format!("db=d&precision={given}")).unwrap();
            assert_eq!(
                (t.query, t.scale),
                (format!("org=my%20org&bucket=d&precision={v2_name}"), scale)
            );
            let t = translate(&OutputApi::V3, &format!("db=d&precision={given}")).unwrap();
            assert_eq!(
                (t.query, t.scale),
                (format!("db=d&precision={v3_name}"), scale)
            );
        }
    }

    #[test]
    fn reads_go_to_the_1x_compatible_query_path() {
        let output = |url: &str, org: Option<&str>| {
            let mut text = format!(
                "[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nlocation = \"{url}\"\n"
            );
            if let Some(org) = org {
                text.push_str(&format!("org = \"{org}\"\n"));
            }
            crate::config::parse(&text).unwrap().http[0].outputs[0].clone()
        };
        for (url, org, want) in [
            ("http://h:1/write", None, "/query"),
            ("http://h:1/p/write", None, "/p/query"),
            ("http://h:1/api/v2/write", Some("o"), "/query"),
            ("http://h:1/p/api/v2/write", Some("o"), "/p/query"),
            ("http://h:1/api/v3/write_lp", None, "/query"),
        ] {
            assert_eq!(query_path(&output(url, org)), want, "{url}");
        }
    }

    #[test]
    fn a_query_without_a_database_is_refused() {
        assert!(translate(&OutputApi::V3, "precision=s").is_err());
        assert!(translate(&OutputApi::V1, "db=x").is_err());
    }
}
