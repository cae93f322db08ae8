//! Relay-side authentication, sans-I/O: which requests need credentials, where a client
//! put them (the places InfluxDB 1.x looks), whether they match the listener's table of
//! SHA-256 digests, and how they are kept from the backends when the listener says so.
//!
//! Credentials are looked for as InfluxDB 1.x does: `u` and `p` query parameters when
//! both are non-empty, else the `Authorization` header, either `Basic base64(user:pass)`,
//! `Token user:pass` or `Token <token>` (a bare token, checked against `token-sha256`
//! entries). Nothing here logs or keeps a secret: a presented password lives only until
//! it is hashed.

use crate::config::AuthConfig;
use crate::http::request::Method;
use crate::http::write;

/// Body of the 401 answer, InfluxDB's own wording.
pub const FAILED: &str = "authorization failed";

/// Header line sent with every 401, so browsers and `curl --anyauth` know to retry
/// with Basic credentials.
pub const CHALLENGE: &str = "WWW-Authenticate: Basic realm=\"influx-relay\"\r\n";

/// Whether a request to `path` with `method` must carry credentials on a listener with
/// authentication. Everything is protected except what must work without them: `/ping`
/// (load balancers' health checks), CORS preflights of `/write` (browsers never attach
/// credentials to them), and the observability pages unless `metrics` asks otherwise.
pub fn needs_credentials(path: &str, method: Method, metrics: bool) -> bool {
    match path {
        "/ping" => false,
        "/write" => method != Method::Options,
        // The status page shows what `/status` does, so it is guarded alike.
        "/" | "/health" | "/status" | "/metrics" => metrics,
        _ => true,
    }
}

/// Credentials as a client presented them. Deliberately not `Debug`: nothing should
/// be able to print a password by accident.
#[derive(PartialEq, Eq)]
pub enum Presented {
    User { name: Vec<u8>, password: Vec<u8> },
    Token(Vec<u8>),
}

/// The credentials in a request, `None` when there are none (or they cannot be read).
pub fn presented(authorization: Option<&[u8]>, query: &str) -> Option<Presented> {
    let mut user = None;
    let mut pass = None;
    for (key, value) in write::query_pairs(query) {
        match key.as_str() {
            "u" => user = Some(value),
            "p" => pass = Some(value),
            _ => {}
        }
    }
    if let (Some(name), Some(password)) = (user, pass) {
        if !name.is_empty() && !password.is_empty() {
            return Some(Presented::User {
                name: name.into_bytes(),
                password: password.into_bytes(),
            });
        }
    }
    from_header(authorization?)
}

fn from_header(value: &[u8]) -> Option<Presented> {
    let value = value.trim_ascii();
    let split = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(split);
    let rest = rest.trim_ascii();
    // RFC 9110: the scheme is case-insensitive.
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64_decode(rest)?;
        let (name, password) = split_colon(&decoded)?;
        Some(Presented::User {
            name: name.to_vec(),
            password: password.to_vec(),
        })
    } else if scheme.eq_ignore_ascii_case(b"token") {
        Some(match split_colon(rest) {
            Some((name, password)) => Presented::User {
                name: name.to_vec(),
                password: password.to_vec(),
            },
            None => Presented::Token(rest.to_vec()),
        })
    } else {
        None
    }
}

fn split_colon(v: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = v.iter().position(|&b| b == b':')?;
    Some((&v[..i], &v[i + 1..]))
}

/// Whether `presented` matches an entry of `table`. Every entry of the matching kind is
/// compared in constant time, so the answer's timing says neither which user nor
/// whether the name exists.
pub fn verify(table: &AuthConfig, presented: &Presented) -> bool {
    match presented {
        Presented::User { name, password } => {
            let digest = sha256(password);
            let mut ok = 0u8;
            for user in &table.users {
                ok |= ct_eq(name, user.name.as_bytes()) & ct_eq(&digest, &user.password_sha256);
            }
            ok == 1
        }
        Presented::Token(token) => {
            let digest = sha256(token);
            let mut ok = 0u8;
            for known in &table.tokens {
                ok |= ct_eq(&digest, known);
            }
            ok == 1
        }
    }
}

/// The whole check: credentials present and known.
pub fn check(table: &AuthConfig, authorization: Option<&[u8]>, query: &str) -> bool {
    presented(authorization, query).is_some_and(|p| verify(table, &p))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// 1 when equal, else 0, in time that depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> u8 {
    if a.len() != b.len() {
        return 0;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from turning the fold into an early-exit comparison.
    let diff = std::hint::black_box(diff);
    u8::from(diff == 0)
}

/// `query` without its `u` and `p` parameters, the rest byte for byte in order.
pub fn strip_credentials(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if matches!(write::percent_decode(key).as_str(), "u" | "p") {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    out
}

/// Standard base64 (RFC 4648), padding optional; `None` on anything else.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = match text {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        _ => text,
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::User;
    use proptest::prelude::*;

    fn table() -> AuthConfig {
        AuthConfig {
            users: vec![
                User {
                    name: "telegraf".into(),
                    password_sha256: sha256(b"s3cret"),
                },
                User {
                    name: "grafana".into(),
                    password_sha256: sha256(b"pa:ss word"),
                },
            ],
            tokens: vec![sha256(b"tok-123")],
            metrics: false,
        }
    }

    fn ok(auth: Option<&str>, query: &str) -> bool {
        check(&table(), auth.map(str::as_bytes), query)
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_place_credentials_can_be() {
        // Basic dGVsZWdyYWY6czNjcmV0 = telegraf:s3cret
        assert!(ok(Some("Basic dGVsZWdyYWY6czNjcmV0"), "db=x"));
        assert!(ok(Some("basic   dGVsZWdyYWY6czNjcmV0  "), "db=x"));
        assert!(ok(Some("Token telegraf:s3cret"), "db=x"));
        assert!(ok(Some("TOKEN grafana:pa:ss word"), "db=x"));
        assert!(ok(Some("Token tok-123"), "db=x"));
        assert!(ok(None, "db=x&u=telegraf&p=s3cret"));
        assert!(ok(None, "u=grafana&p=pa%3Ass+word&db=x"));
    }

    #[test]
    fn wrong_missing_or_unreadable_credentials_fail() {
        assert!(!ok(None, "db=x"));
        assert!(!ok(Some("Basic dGVsZWdyYWY6d3Jvbmc="), "db=x")); // telegraf:wrong
        assert!(!ok(Some("Basic bm9ib2R5OnMzY3JldA=="), "db=x")); // nobody:s3cret
        assert!(!ok(Some("Basic dGVsZWdyYWY="), "db=x")); // no colon
        assert!(!ok(Some("Basic !!!!"), "db=x"));
        assert!(!ok(Some("Basic"), "db=x"));
        assert!(!ok(Some("Bearer tok-123"), "db=x"));
        assert!(!ok(Some("Token tok-1234"), "db=x"));
        assert!(!ok(Some("Token telegraf:S3cret"), "db=x"));
        assert!(!ok(Some("Token :s3cret"), "db=x"));
        assert!(!ok(None, "db=x&u=telegraf&p=wrong"));
        // A user's password is not a token, nor a token a password.
        assert!(!ok(Some("Token s3cret"), "db=x"));
        assert!(!ok(None, "u=x&p=tok-123"));
    }

    #[test]
    fn query_parameters_win_over_the_header_only_when_both_are_set() {
        // As in InfluxDB: u and p both non-empty are used, whatever the header says.
        assert!(!ok(Some("Token tok-123"), "u=telegraf&p=wrong"));
        assert!(ok(Some("Token telegraf:wrong"), "u=telegraf&p=s3cret"));
        // Only one of them: the header decides.
        assert!(ok(Some("Token tok-123"), "u=telegraf"));
        assert!(ok(Some("Token tok-123"), "u=telegraf&p="));
    }

    #[test]
    fn which_routes_are_protected() {
        use Method::*;
        assert!(!needs_credentials("/ping", Get, true));
        assert!(!needs_credentials("/ping", Head, true));
        assert!(needs_credentials("/write", Post, false));
        assert!(needs_credentials("/write", Get, false));
        assert!(!needs_credentials("/write", Options, false));
        for page in ["/", "/health", "/status", "/metrics"] {
            assert!(!needs_credentials(page, Get, false));
            assert!(needs_credentials(page, Get, true));
        }
        assert!(needs_credentials("/query", Get, false));
        assert!(needs_credentials("/nowhere", Get, false));
    }

    #[test]
    fn stripping_keeps_everything_but_u_and_p() {
        assert_eq!(strip_credentials("db=x&u=a&p=b&rp=r"), "db=x&rp=r");
        assert_eq!(strip_credentials("u=a&db=x"), "db=x");
        assert_eq!(strip_credentials("%75=a&%70=b&db=x"), "db=x");
        assert_eq!(strip_credentials("db=x&user=a&pp=b&u"), "db=x&user=a&pp=b");
        assert_eq!(strip_credentials("db=x&&precision=s"), "db=x&precision=s");
        assert_eq!(strip_credentials(""), "");
    }

    #[test]
    fn base64_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                base64_decode(enc.as_bytes()).as_deref(),
                Some(plain.as_bytes())
            );
            let unpadded = enc.trim_end_matches('=');
            assert_eq!(
                base64_decode(unpadded.as_bytes()).as_deref(),
                Some(plain.as_bytes())
            );
        }
        assert_eq!(base64_decode(b"Z"), None);
        assert_eq!(base64_decode(b"Zm9v YmFy"), None);
        assert_eq!(base64_decode(b"Zm=v"), None);
    }

    #[test]
    fn constant_time_equality() {
        assert_eq!(ct_eq(b"abc", b"abc"), 1);
        assert_eq!(ct_eq(b"abc", b"abd"), 0);
        assert_eq!(ct_eq(b"abc", b"ab"), 0);
        assert_eq!(ct_eq(b"", b""), 1);
    }

    proptest! {
        #[test]
        fn never_panics_and_garbage_never_passes(
            header in proptest::collection::vec(any::<u8>(), 0..64),
            query in "[a-z=&%+0-9]{0,40}",
        ) {
            prop_assert!(!check(&table(), Some(&header), &query));
            let stripped = strip_credentials(&query);
            prop_assert!(write::query_pairs(&stripped).all(|(k, _)| k != "u" && k != "p"));
        }

        #[test]
        fn basic_round_trip(name in "[a-z]{1,12}", password in "[ -~]{0,24}") {
            let mut t = table();
            t.users.push(User { name: name.clone(), password_sha256: sha256(password.as_bytes()) });
            let mut header = String::from("Basic ");
            encode(format!("{name}:{password}").as_bytes(), &mut header);
            prop_assert!(check(&t, Some(header.as_bytes()), "db=x"));
            let mut wrong = String::from("Basic ");
            encode(format!("{name}:{password}x").as_bytes(), &mut wrong);
            prop_assert!(!check(&t, Some(wrong.as_bytes()), "db=x"));
        }
    }

    /// Test input: the relay itself only decodes.
    fn encode(input: &[u8], out: &mut String) {
        crate::config::base64_encode(input, out);
    }
}
