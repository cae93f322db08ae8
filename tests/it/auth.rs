//! Relay-side authentication (issue 8): who gets in, what reaches the backends, and
//! where credentials must never show up (logs) or be readable by others (the spool).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use influx_relay::http::auth::sha256;

use crate::util::*;

fn hex(digest: [u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(A[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}

/// `users = [ telegraf / s3cret, token tok-1 ]` as a TOML value.
pub fn users() -> toml::Value {
    let mut user = toml::Table::new();
    user.insert("name".into(), "telegraf".into());
    user.insert("password-sha256".into(), hex(sha256(b"s3cret")).into());
    let mut token = toml::Table::new();
    token.insert("token-sha256".into(), hex(sha256(b"tok-1")).into());
    toml::Value::Array(vec![user.into(), token.into()])
}

fn write_with(relay: SocketAddr, query: &str, headers: &[(&str, &str)], body: &str) -> Response {
    http_request(
        relay,
        "POST",
        &format!("/write?{query}"),
        headers,
        body.as_bytes(),
    )
}

#[test]
fn unauthenticated_requests_get_401_and_every_credential_form_is_accepted() {
    let db = shared_db("auth_forms");
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .listener_opt("users", users())
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let q = format!("db={db}");
    let basic = format!("Basic {}", base64(b"telegraf:s3cret"));
    let wrong = format!("Basic {}", base64(b"telegraf:nope"));

    let denied: [(String, Vec<(&str, &str)>); 5] = [
        (q.clone(), vec![]),
        (q.clone(), vec![("Authorization", wrong.as_str())]),
        (q.clone(), vec![("Authorization", "Token tok-2")]),
        (q.clone(), vec![("Authorization", "Bearer tok-1")]),
        (format!("{q}&u=telegraf&p=nope"), vec![]),
    ];
    for (query, headers) in &denied {
        let resp = write_with(addr, query, headers, "m v=1 1\n");
        assert_eq!(resp.status, 401, "{query} {headers:?}");
        assert_eq!(resp.body_str(), r#"{"error":"authorization failed"}"#);
        assert_eq!(
            resp.header("WWW-Authenticate"),
            Some(r#"Basic realm="influx-relay""#)
        );
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
    }

    let accepted: [(String, Vec<(&str, &str)>); 4] = [
        (q.clone(), vec![("Authorization", basic.as_str())]),
        (q.clone(), vec![("Authorization", "Token telegraf:s3cret")]),
        (q.clone(), vec![("Authorization", "Token tok-1")]),
        (format!("{q}&u=telegraf&p=s3cret"), vec![]),
    ];
    for (i, (query, headers)) in accepted.iter().enumerate() {
        let resp = write_with(addr, query, headers, &format!("m v={i} {}\n", i + 1));
        assert_eq!(resp.status, 204, "{query} {headers:?}: {}", resp.body_str());
    }
    for backend in shared_backends() {
        assert_eq!(
            count(backend.http_addr(), &db, "m"),
            4,
            "only accepted writes"
        );
    }

    // Health checks and the status page need no credentials (auth-metrics is off by
    // default).
    assert_eq!(http_request(addr, "GET", "/ping", &[], b"").status, 204);
    assert_eq!(http_request(addr, "GET", "/health", &[], b"").status, 200);
    assert_eq!(http_request(addr, "GET", "/", &[], b"").status, 200);
    assert_eq!(
        http_request(addr, "OPTIONS", "/write", &[], b"").status,
        204,
        "CORS preflights carry no credentials"
    );
}

#[test]
fn a_refused_client_costs_its_head_not_its_body() {
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .listener_opt("users", users())
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());

    // 20 MB announced, none sent: the 401 comes at once and the connection closes.
    let started = Instant::now();
    let out = raw_exchange(
        relay.addr(),
        b"POST /write?db=x HTTP/1.1\r\nHost: r\r\nContent-Length: 20000000\r\nExpect: 100-continue\r\n\r\n",
        Duration::from_secs(5),
    );
    let answers = parse_responses(&out);
    assert_eq!(answers.len(), 1, "no 100 Continue before a 401");
    assert_eq!(answers[0].status, 401);
    assert_eq!(answers[0].header("Connection"), Some("close"));
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");

    // A client that sends its body anyway still reads its 401, many times over.
    let body = vec![b'#'; 3 << 20];
    for _ in 0..20 {
        let resp = http_request(relay.addr(), "POST", "/write?db=x", &[], &body);
        assert_eq!(resp.status, 401);
    }

    // Without a body the connection stays usable.
    let out = raw_exchange(
        relay.addr(),
        b"GET /query?q=show HTTP/1.1\r\nHost: r\r\n\r\nGET /ping HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let statuses: Vec<u16> = parse_responses(&out).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 204]);
}

#[test]
fn users_file_and_auth_metrics() {
    let db = shared_db("auth_file");
    let dir = tempfile::Builder::new()
        .prefix(&format!("relay-{}-", std::process::id()))
        .tempdir()
        .expect("temp dir");
    std::fs::write(
        dir.path().join("users"),
        format!(
            "# relay users\nops:{}\ntelegraf:{}\n",
            hex(sha256(b"ops-pw")),
            hex(sha256(b"s3cret"))
        ),
    )
    .expect("users file");
    let cfg = RelayConfig::new()
        .http_listener("in", "any")
        .listener_opt("users-file", "users")
        .listener_opt("auth-metrics", true)
        .outputs_to(shared_backends(), "5s");
    let relay = Relay::start_in(dir, &cfg.to_toml());
    let addr = relay.addr();
    let ops = format!("Basic {}", base64(b"ops:ops-pw"));

    assert_eq!(http_request(addr, "GET", "/ping", &[], b"").status, 204);
    for page in ["/", "/health", "/status", "/metrics"] {
        assert_eq!(
            http_request(addr, "GET", page, &[], b"").status,
            401,
            "{page}"
        );
        let resp = http_request(addr, "GET", page, &[("Authorization", &ops)], b"");
        assert_ne!(resp.status, 401, "{page}");
    }
    let resp = write_with(
        addr,
        &format!("db={db}"),
        &[("Authorization", "Token telegraf:s3cret")],
        "m v=1 1\n",
    );
    assert_eq!(resp.status, 204, "{}", resp.body_str());
}

/// What a backend was sent: the request target and the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    target: String,
    authorization: Option<String>,
}

/// A backend that answers every request 204 and records what it got.
struct FakeBackend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeBackend {
    fn start() -> FakeBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake backend");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        // Lives until the test binary exits: blocked in accept, it costs nothing.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                thread::spawn(move || serve_fake(stream, &record));
            }
        });
        FakeBackend { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/write", self.addr)
    }

    fn wait_for(&self, n: usize) -> Vec<Seen> {
        wait_until(Duration::from_secs(5), || {
            self.seen.lock().map(|s| s.len() >= n).unwrap_or(false)
        });
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn serve_fake(mut stream: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head_len)) = req.parse(&buf) else {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let fields: HashMap<String, String> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let target = req.path.unwrap_or_default().to_string();
        let len: usize = fields
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_len + len {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_len + len);
        if let Ok(mut s) = seen.lock() {
            s.push(Seen {
                target,
                authorization: fields.get("authorization").cloned(),
            });
        }
        if stream
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn forward_credentials_decides_what_backends_see() {
    let forward = FakeBackend::start();
    let keep = FakeBackend::start();
    let replaced = FakeBackend::start();
    let cfg = RelayConfig::new()
        .http_listener("forward", "any")
        .output("f", &forward.url(), "2s")
        .http_listener("keep", "any")
        .listener_opt("forward-credentials", false)
        .output("k", &keep.url(), "2s")
        .http_listener("replaced", "any")
        .listener_opt("users", users())
        .listener_opt("forward-credentials", false)
        .output("r", &replaced.url(), "2s")
        .output_opt("http-user", "relay")
        .output_opt("http-pass", "backend-pw");
    let relay = Relay::start(&cfg.to_toml());
    let client_auth = format!("Basic {}", base64(b"telegraf:s3cret"));
    let query = "db=x&u=telegraf&p=s3cret&precision=s";
    for name in ["forward", "keep", "replaced"] {
        let resp = write_with(
            cfg.listener_addr(name),
            query,
            &[("Authorization", &client_auth)],
            "m v=1 1\n",
        );
        assert_eq!(resp.status, 204, "{name}: {}", resp.body_str());
    }
    assert_eq!(
        forward.wait_for(1),
        [Seen {
            target: format!("/write?{query}"),
            authorization: Some(client_auth.clone()),
        }],
        "the default forwards the client's credentials as the original did"
    );
    assert_eq!(
        keep.wait_for(1),
        [Seen {
            target: "/write?db=x&precision=s".to_string(),
            authorization: None,
        }]
    );
    assert_eq!(
        replaced.wait_for(1),
        [Seen {
            target: "/write?db=x&precision=s".to_string(),
            authorization: Some(format!("Basic {}", base64(b"relay:backend-pw"))),
        }]
    );
    drop(relay);
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read spool dir").flatten() {
        let path = entry.path();
        out.push(path.clone());
        if path.is_dir() {
            walk(&path, out);
        }
    }
}

#[test]
fn a_spool_holding_credentials_is_private_and_logs_never_show_them() {
    let cfg = RelayConfig::new()
        .global("log-level", "debug")
        .http_listener("in", "any")
        .listener_opt("users", users())
        .output(
            "down",
            &format!("http://127.0.0.1:{}/write", free_port()),
            "1s",
        )
        .output_opt("spool-size-mb", 8)
        .output_opt("max-delay-interval", "1s");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let wrong = format!("Basic {}", base64(b"telegraf:wrong-SECRET"));
    let resp = write_with(addr, "db=x", &[("Authorization", &wrong)], "m v=1 1\n");
    assert_eq!(resp.status, 401);
    let resp = write_with(
        addr,
        "db=x&u=telegraf&p=s3cret",
        &[("Authorization", "Token tok-1")],
        "m v=1 1\n",
    );
    assert_eq!(resp.status, 204, "spooled: {}", resp.body_str());

    let spool = relay.dir().join("spool");
    let mut files = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        files.clear();
        walk(&spool, &mut files);
        files
            .iter()
            .any(|f| f.is_file() && std::fs::read(f).is_ok_and(|b| contains(&b, b"s3cret")))
    }));
    for path in &files {
        let mode = std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", path.display());
    }
    let mode = std::fs::metadata(&spool)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);

    // Give the failing backend time to log its errors, then look for any secret.
    thread::sleep(Duration::from_millis(1500));
    let logs = relay.stderr_text();
    for secret in [
        "SECRET",
        "s3cret",
        "tok-1",
        &base64(b"telegraf:wrong-SECRET"),
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Credentials on `/query` escaped the listener's rules: `u`/`p` of a form body were
/// moved into the URL every backend got, where InfluxDB prefers them to any
/// `Authorization` (so they overrode `http-user`, even with `forward-credentials =
/// false`); reads to an output with `http-user` went without credentials; and a client
/// without credentials that announced a body over the limit was told 413, not 401.
#[test]
fn query_credentials_follow_the_listener_rules() {
    let backend = Influxd::start_with_auth("relay", "relay-pw");
    let db = unique_db("auth_query");
    let cfg = RelayConfig::new()
        .http_listener("in", "all")
        .listener_opt("users", users())
        .listener_opt("forward-credentials", false)
        .listener_opt("max-body-size-mb", 1)
        .output("b0", &backend.write_url(), "5s")
        .output_opt("http-user", "relay")
        .output_opt("http-pass", "relay-pw");
    let relay = Relay::start(&cfg.to_toml());
    let addr = relay.addr();
    let token = ("Authorization", "Token telegraf:s3cret");
    let form = [token, ("Content-Type", "application/x-www-form-urlencoded")];
    let ok = |r: &Response, what: &str| {
        assert_eq!(r.status, 200, "{what}: {}", r.body_str());
        assert!(!r.body_str().contains("error"), "{what}: {}", r.body_str());
    };

    // A statement whose form body carries someone else's credentials.
    let create = format!(
        "q={}&u=nobody&p=wrong",
        url_encode(&format!("CREATE DATABASE {db}"))
    );
    let r = http_request(addr, "POST", "/query", &form, create.as_bytes());
    ok(&r, "statement");
    // Reads go out with the output's credentials, form body or not.
    let r = http_request(
        addr,
        "POST",
        "/query",
        &form,
        b"q=SHOW+DATABASES&u=nobody&p=wrong",
    );
    ok(&r, "form read");
    assert!(r.body_str().contains(&db), "{}", r.body_str());
    let r = http_request(addr, "GET", "/query?q=SHOW%20DATABASES", &[token], b"");
    ok(&r, "read");
    assert!(r.body_str().contains(&db), "{}", r.body_str());
    let w = write_with(addr, &format!("db={db}"), &[token], "m v=1 1\n");
    assert_eq!(w.status, 204, "{}", w.body_str());
    let r = http_request(
        addr,
        "GET",
        &format!("/query?db={db}&epoch=ns&q=SELECT%20v%20FROM%20m"),
        &[token],
        b"",
    );
    ok(&r, "select");
    assert!(r.body_str().contains("[1,1]"), "{}", r.body_str());

    // Without credentials the answer is 401, whatever size was announced; with them, a
    // body over the limit is 413.
    let big = vec![b'#'; 2 << 20];
    let r = http_request(addr, "POST", &format!("/write?db={db}"), &[], &big);
    assert_eq!(r.status, 401, "{}", r.body_str());
    let r = http_request(addr, "POST", &format!("/write?db={db}"), &[token], &big);
    assert_eq!(r.status, 413, "{}", r.body_str());
}
