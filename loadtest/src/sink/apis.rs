//! The three InfluxDB write APIs as the sink checks them, sans-I/O: `/write` (1.x),
//! `/api/v2/write` (2.x) and `/api/v3/write_lp` (3.x). The sink stands in for InfluxDB
//! 2.x and 3.x servers in tests and benchmarks, so it refuses what they would refuse
//! (missing or empty database, bucket or org; a precision they do not know; a wrong
//! token when it has one) in their error shapes, and counts accepted lines per target,
//! so a test can see exactly which database and precision a relay sent.

/// A write API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1,
    V2,
    V3,
}

impl Api {
    pub fn of_path(path: &str) -> Option<Api> {
        match path {
            "/write" => Some(Api::V1),
            "/api/v2/write" => Some(Api::V2),
            "/api/v3/write_lp" => Some(Api::V3),
            _ => None,
        }
    }

    /// An error body in this API's shape.
    pub fn error_body(self, status: u16, message: &str) -> String {
        let mut body = String::new();
        match self {
            Api::V2 => {
                let code = match status {
                    401 => "unauthorized",
                    404 => "not found",
                    413 => "request too large",
                    400..=499 => "invalid",
                    _ => "internal error",
                };
                body.push_str("{\"code\":");
                crate::json::push_str(&mut body, code);
                body.push_str(",\"message\":");
                crate::json::push_str(&mut body, message);
            }
            Api::V1 | Api::V3 => {
                body.push_str("{\"error\":");
                crate::json::push_str(&mut body, message);
            }
        }
        body.push('}');
        body
    }
}

/// A refused write: status and message.
pub type Refusal = (u16, String);

fn invalid(message: impl Into<String>) -> Refusal {
    (400, message.into())
}

/// Check a write's query string and credentials. `Ok`: the target its lines are counted
/// under, e.g. `v2 org=- bucket=db/rp precision=s`.
pub fn check_write(
    api: Api,
    query: &str,
    authorization: Option<&str>,
    token: Option<&str>,
) -> Result<String, Refusal> {
    if let Some(token) = token {
        let given = authorization.map(str::trim).and_then(|a| {
            a.strip_prefix("Token ")
                .or_else(|| a.strip_prefix("Bearer "))
        });
        if given != Some(token) {
            return Err((401, "unauthorized access".to_string()));
        }
    }
    let param = |key: &str| param(query, key);
    let non_empty = |key: &str| param(key).filter(|v| !v.is_empty());
    match api {
        Api::V1 => {
            let db = non_empty("db").ok_or_else(|| invalid("database is required"))?;
            let precision = param("precision").unwrap_or_default();
            let rp = param("rp").unwrap_or_default();
            Ok(format!("v1 db={db} rp={rp} precision={precision}"))
        }
        Api::V2 => {
            let org = non_empty("org")
                .or_else(|| non_empty("orgID"))
                .ok_or_else(|| invalid("Please provide either orgID or org"))?;
            let bucket = non_empty("bucket").ok_or_else(|| invalid("bucket is required"))?;
            let precision = param("precision").unwrap_or_else(|| "ns".to_string());
            if !matches!(precision.as_str(), "ns" | "us" | "ms" | "s") {
                return Err(invalid(
                    "invalid precision; valid precision units are ns, us, ms, and s",
                ));
            }
            Ok(format!(
                "v2 org={org} bucket={bucket} precision={precision}"
            ))
        }
        Api::V3 => {
            let db = non_empty("db").ok_or_else(|| invalid("missing db"))?;
            if db.matches('/').count() > 1 || db.starts_with('/') {
                return Err(invalid(format!("invalid database name {db:?}")));
            }
            let precision = param("precision").unwrap_or_else(|| "auto".to_string());
            let known = [
                "auto",
                "nanosecond",
                "microsecond",
                "millisecond",
                "second",
                "ns",
                "n",
                "us",
                "u",
                "ms",
                "s",
            ];
            if !known.contains(&precision.as_str()) {
                return Err(invalid(format!("unrecognized precision unit: {precision}")));
            }
            for flag in ["accept_partial", "no_sync"] {
                if param(flag).is_some_and(|v| v != "true" && v != "false") {
                    return Err(invalid(format!("invalid {flag}")));
                }
            }
            Ok(format!("v3 db={db} precision={precision}"))
        }
    }
}

/// A query parameter, percent-decoded (`+` is a space).
fn param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_api_database_and_precision() {
        assert_eq!(
            check_write(Api::V2, "org=-&bucket=db%2Frp&precision=s", None, None).unwrap(),
            "v2 org=- bucket=db/rp precision=s"
        );
        assert_eq!(
            check_write(Api::V3, "db=d&precision=second", None, None).unwrap(),
            "v3 db=d precision=second"
        );
        assert_eq!(
            check_write(Api::V1, "db=d", None, None).unwrap(),
            "v1 db=d rp= precision="
        );
    }

    #[test]
    fn refusals() {
        for (api, query) in [
            (Api::V1, ""),
            (Api::V2, "bucket=b"),
            (Api::V2, "org=o"),
            (Api::V2, "org=o&bucket=b&precision=m"),
            (Api::V2, "org=o&bucket=b&precision=nanosecond"),
            (Api::V3, "precision=second"),
            (Api::V3, "db=a/b/c"),
            (Api::V3, "db=a&precision=ns2"),
            (Api::V3, "db=a&no_sync=1"),
        ] {
            assert_eq!(
                check_write(api, query, None, None).unwrap_err().0,
                400,
                "{query}"
            );
        }
        let token = Some("t");
        assert_eq!(
            check_write(Api::V3, "db=a", Some("Token x"), token)
                .unwrap_err()
                .0,
            401
        );
        assert_eq!(
            check_write(Api::V3, "db=a", None, token).unwrap_err().0,
            401
        );
        assert!(check_write(Api::V3, "db=a", Some("Bearer t"), token).is_ok());
        assert!(check_write(Api::V2, "org=o&bucket=b", Some("Token t"), token).is_ok());
    }

    #[test]
    fn error_shapes() {
        assert_eq!(
            Api::V2.error_body(400, "x"),
            r#"{"code":"invalid","message":"x"}"#
        );
        assert_eq!(Api::V3.error_body(401, "y"), r#"{"error":"y"}"#);
        assert_eq!(decode("a%2Fb+c%zz%"), "a/b c%zz%");
    }
}
