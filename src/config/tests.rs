use super::*;

/// The smallest valid file: one HTTP listener with one output.
const MINIMAL: &str = r#"
    [[http]]
    bind-addr = "127.0.0.1:9096"
    output = [ { location = "http://127.0.0.1:8086/write" } ]
"#;

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// `MINIMAL` with `extra` added to the listener (`listener`) or output (`output`).
fn http_with(listener: &str, output: &str) -> String {
    format!(
        "[[http]]\nbind-addr = \"127.0.0.1:9096\"\n{listener}\n\
         [[http.output]]\nlocation = \"http://127.0.0.1:8086/write\"\n{output}\n"
    )
}

fn udp_with(listener: &str, output: &str) -> String {
    format!(
        "[[udp]]\nbind-addr = \"127.0.0.1:9096\"\n{listener}\n\
         [[udp.output]]\nlocation = \"127.0.0.1:8089\"\n{output}\n"
    )
}

#[test]
fn defaults() {
    let c = parse(MINIMAL).expect("minimal config");
    assert_eq!(
        c.threads,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    assert!(c.threads >= 1);
    assert!(!c.pin_threads);
    assert_eq!(c.spool_dir, PathBuf::from("./spool"));
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
    assert!(c.udp.is_empty());

    let h = &c.http[0];
    assert_eq!(h.name, "http://127.0.0.1:9096");
    assert_eq!(h.bind_addr, "127.0.0.1:9096".parse().unwrap());
    assert_eq!(h.ssl_combined_pem, None);
    assert_eq!(h.ssl_min_version, TlsVersion::V1_2);
    assert_eq!(h.default_retention_policy, None);
    assert_eq!(h.ack, Ack::Any);
    assert_eq!(h.max_body_size, 25 * 1024 * 1024);
    assert_eq!(h.read_timeout, Duration::from_secs(10));
    assert_eq!(h.idle_timeout, Duration::from_secs(60));
    assert_eq!(h.max_connections, 10_000);
    assert_eq!(h.auth, None);
    assert!(h.forward_credentials);

    let o = &h.outputs[0];
    assert_eq!(o.name, "http://127.0.0.1:8086/write");
    assert_eq!(
        o.location,
        Location {
            https: false,
            host: "127.0.0.1".into(),
            port: 8086,
            path: "/write".into(),
            url: "http://127.0.0.1:8086/write".into(),
        }
    );
    assert_eq!(o.timeout, Duration::from_secs(10));
    assert!(!o.skip_tls_verification);
    assert_eq!(o.ca_file, None);
    assert_eq!(o.buffer_size, 0);
    assert_eq!(
        o.coalesce_limit,
        4096 * 1024,
        "not set: live merges may be larger"
    );
    assert_eq!(o.max_delay_interval, Duration::from_secs(10));
    assert_eq!(o.concurrency, 1);
    assert_eq!(o.spool_size, 0);
    assert_eq!(o.spool_max_age, Duration::from_secs(168 * 3600));
    assert!(!o.gzip);
    assert_eq!(o.basic_auth, None);
}

#[test]
fn udp_defaults() {
    let c = parse(&udp_with("", "")).expect("udp config");
    let u = &c.udp[0];
    assert_eq!(u.name, "udp://127.0.0.1:9096");
    assert_eq!(u.read_buffer, 0);
    assert_eq!(u.precision, Precision::Nanoseconds);
    assert_eq!(u.outputs[0].name, "127.0.0.1:8089");
    assert_eq!(u.outputs[0].location, "127.0.0.1:8089".parse().unwrap());
    assert_eq!(u.outputs[0].mtu, 1024);
}

#[test]
fn every_key_set() {
    let text = r#"
        threads = 3
        pin-threads = true
        spool-dir = "/var/lib/relay"
        log-level = "debug"
        shutdown-timeout = "0"

        [[http]]
        name = "a"
        bind-addr = ":9096"
        ssl-combined-pem = "/etc/relay.pem"
        ssl-min-version = "1.3"
        default-retention-policy = "autogen"
        ack = "quorum"
        max-body-size-mb = 1
        read-timeout = "1500ms"
        idle-timeout = "2m"
        max-connections = 7
        users = [ { name = "telegraf", password-sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b" },
                  { token-sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD" } ]
        auth-metrics = true
        forward-credentials = false
        [[http.output]]
        name = "x"
        location = "HTTPS://db.example:8443/api/write?db=ignored"
        timeout = "2s"
        skip-tls-verification = true
        buffer-size-mb = 3
        max-batch-kb = 0
        max-delay-interval = "1m30s"
        concurrency = 4
        spool-size-mb = 1024
        spool-max-age = "24h"
        gzip = true
        http-user = "u"
        http-pass = "p"

        [[udp]]
        bind-addr = "[::1]:9097"
        read-buffer = 8388608
        precision = "ms"
        output = [ { name = "y", location = "localhost:8089", mtu = 0 },
                   { location = "10.0.0.1:8089", mtu = 1400 } ]
    "#;
    let c = parse(text).expect("full config");
    assert_eq!(c.threads, 3);
    assert!(c.pin_threads);
    assert_eq!(c.spool_dir, PathBuf::from("/var/lib/relay"));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.shutdown_timeout, Duration::ZERO);

    let h = &c.http[0];
    assert_eq!(h.name, "a");
    assert_eq!(h.bind_addr, "0.0.0.0:9096".parse().unwrap());
    assert_eq!(h.ssl_combined_pem, Some(PathBuf::from("/etc/relay.pem")));
    assert_eq!(h.ssl_min_version, TlsVersion::V1_3);
    assert_eq!(h.default_retention_policy.as_deref(), Some("autogen"));
    assert_eq!(h.ack, Ack::Quorum);
    assert_eq!(h.max_body_size, 1024 * 1024);
    assert_eq!(h.read_timeout, Duration::from_millis(1500));
    assert_eq!(h.idle_timeout, Duration::from_secs(120));
    assert_eq!(h.max_connections, 7);
    let auth = h.auth.as_ref().expect("users");
    assert_eq!(auth.users.len(), 1);
    assert_eq!(auth.users[0].name, "telegraf");
    assert_eq!(
        auth.users[0].password_sha256,
        crate::http::auth::sha256(b"secret")
    );
    assert_eq!(auth.tokens, vec![crate::http::auth::sha256(b"abc")]);
    assert!(auth.metrics);
    assert!(!h.forward_credentials);
    let printed = format!("{h:?}");
    assert!(printed.contains("telegraf"), "{printed}");
    assert!(
        !printed.contains("2bb80d") && !printed.contains("43, 184"),
        "digests must not be printed: {printed}"
    );

    let o = &h.outputs[0];
    assert_eq!(o.name, "x");
    assert!(o.location.https);
    assert_eq!(o.location.host, "db.example");
    assert_eq!(o.location.port, 8443);
    assert_eq!(o.location.path, "/api/write");
    assert_eq!(
        o.location.url,
        "HTTPS://db.example:8443/api/write?db=ignored"
    );
    assert_eq!(o.timeout, Duration::from_secs(2));
    assert!(o.skip_tls_verification);
    assert_eq!(o.buffer_size, 3 * 1024 * 1024);
    assert_eq!(o.coalesce_limit, 4096 * 1024, "0 means the default");
    assert_eq!(o.max_delay_interval, Duration::from_secs(90));
    assert_eq!(o.concurrency, 4);
    assert_eq!(o.spool_size, 1024 * 1024 * 1024);
    assert_eq!(o.spool_max_age, Duration::from_secs(24 * 3600));
    assert!(o.gzip);
    let auth = o.basic_auth.as_ref().expect("credentials");
    assert_eq!(auth.header_value(), "Basic dTpw");
    assert!(
        !format!("{auth:?}").contains("\"p\""),
        "password must not be printed"
    );

    let u = &c.udp[0];
    assert_eq!(u.name, "udp://[::1]:9097");
    assert_eq!(u.bind_addr, "[::1]:9097".parse().unwrap());
    assert_eq!(u.read_buffer, 8_388_608);
    assert_eq!(u.precision, Precision::Milliseconds);
    assert_eq!(u.outputs[0].name, "y");
    assert_eq!(
        u.outputs[0].location,
        "127.0.0.1:8089".parse().unwrap(),
        "IPv4 preferred"
    );
    assert_eq!(
        u.outputs[0].mtu, 1024,
        "0 means the default, as in the original"
    );
    assert_eq!(u.outputs[1].name, "10.0.0.1:8089");
    assert_eq!(u.outputs[1].mtu, 1400);
}

#[test]
fn https_listener_default_name() {
    let c = parse(&http_with("ssl-combined-pem = \"/x.pem\"", "")).unwrap();
    assert_eq!(c.http[0].name, "https://127.0.0.1:9096");
}

#[test]
fn ssl_min_version_values() {
    for (text, want) in [
        ("\"1.2\"", TlsVersion::V1_2),
        ("\"1.3\"", TlsVersion::V1_3),
        ("\"\"", DEFAULT_SSL_MIN_VERSION),
    ] {
        let c = parse(&http_with(
            &format!("ssl-combined-pem = \"/x.pem\"\nssl-min-version = {text}"),
            "",
        ))
        .unwrap();
        assert_eq!(c.http[0].ssl_min_version, want, "for {text}");
    }
    // A file that writes every key at its default, TLS off, must still load.
    let c = parse(&http_with(
        "ssl-combined-pem = \"\"\nssl-min-version = \"1.2\"",
        "",
    ))
    .unwrap();
    assert_eq!(c.http[0].ssl_combined_pem, None);

    for bad in ["1.1", "1.0", "TLS1.3", "1.4"] {
        let e = err(&http_with(&format!("ssl-min-version = \"{bad}\""), ""));
        assert_eq!(
            e.to_string(),
            format!(
                "http[0].ssl-min-version: unknown TLS version \"{bad}\" (use \"1.2\" or \"1.3\")"
            )
        );
    }
    let e = err(&http_with("ssl-min-version = 1.3", ""));
    assert_eq!(
        e.to_string(),
        "http[0].ssl-min-version: expected a string, found a float"
    );
}

#[test]
fn ca_file() {
    let https = |output: &str| {
        http_with("", output).replace("http://127.0.0.1:8086", "https://127.0.0.1:8086")
    };
    let c = parse(&https("ca-file = \"/etc/ssl/influx-ca.pem\"")).unwrap();
    let o = &c.http[0].outputs[0];
    assert_eq!(o.ca_file, Some(PathBuf::from("/etc/ssl/influx-ca.pem")));
    assert!(!o.skip_tls_verification);

    let c = parse(&https("ca-file = \"\"")).unwrap();
    assert_eq!(c.http[0].outputs[0].ca_file, None, "empty = system roots");

    let e = err(&https(
        "ca-file = \"/ca.pem\"\nskip-tls-verification = true",
    ));
    assert_eq!(
        e.to_string(),
        "http[0].output[0].ca-file: set together with skip-tls-verification = true, \
         which ignores it; remove one"
    );
    let e = err(&https("ca-file = true"));
    assert_eq!(
        e.to_string(),
        "http[0].output[0].ca-file: expected a string, found a boolean"
    );
    let e = err(&https("cafile = \"/ca.pem\""));
    assert_eq!(
        e.to_string(),
        "http[0].output[0]: unknown key \"cafile\" (did you mean \"ca-file\"?)"
    );
}

#[test]
fn go_sample_loads_with_the_original_meaning() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/influxdb-relay-sample.toml");
    let c = load(&path).expect("Go-shaped sample");
    let h = &c.http[0];
    assert_eq!(h.name, "example-http");
    assert_eq!(h.bind_addr, "127.0.0.1:9096".parse().unwrap());
    assert_eq!(h.ssl_combined_pem, None, "empty = plain HTTP");
    assert_eq!(h.default_retention_policy, None, "empty = none");
    assert_eq!(h.ack, Ack::Any);
    assert_eq!(h.outputs.len(), 2);
    assert_eq!(h.outputs[0].name, "local1");
    assert_eq!(h.outputs[0].location.port, 8086);
    assert_eq!(h.outputs[0].basic_auth, None);
    let o = &h.outputs[1];
    assert_eq!(o.location.port, 7086);
    assert_eq!(o.timeout, Duration::from_secs(5));
    assert_eq!(o.buffer_size, 100 * 1024 * 1024);
    assert_eq!(
        o.coalesce_limit,
        50 * 1024,
        "set: it bounds live merges too"
    );
    assert_eq!(o.max_delay_interval, Duration::from_secs(5));
    assert_eq!(
        o.basic_auth.as_ref().map(|a| a.user.as_str()),
        Some("relay")
    );

    let u = &c.udp[0];
    assert_eq!(u.name, "example-udp");
    assert_eq!(
        u.bind_addr, h.bind_addr,
        "HTTP and UDP may share an address"
    );
    assert_eq!(u.precision, Precision::Seconds);
    assert_eq!(u.outputs[0].location, "127.0.0.1:8089".parse().unwrap());
    assert_eq!(u.outputs[0].mtu, 512);
    assert_eq!(u.outputs[1].mtu, 1024);
}

/// Every sample shipped in config/ must load: they are what users copy.
#[test]
fn every_shipped_sample_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = load(&path) {
                panic!("{}: {e}", path.display());
            }
            loaded += 1;
        }
    }
    assert!(
        loaded >= 2,
        "expected relay.toml and influxdb-relay-sample.toml"
    );
}

#[test]
fn relay_sample_sets_every_default() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/relay.toml");
    let c = load(&path).expect("relay.toml");
    let o = &c.http[0].outputs[0];
    assert_eq!(o.timeout, DEFAULT_HTTP_TIMEOUT);
    assert_eq!(o.spool_max_age, DEFAULT_SPOOL_MAX_AGE);
    assert_eq!(c.http[0].outputs[1].location.port, 7086);
    assert_eq!(c.http[0].max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(c.udp[0].outputs[0].mtu, DEFAULT_MTU);
}

#[test]
fn syntax_error_names_line_and_column() {
    let e = err("threads = 1\nlog-level = \n");
    assert_eq!(e.path, "");
    assert!(
        e.message.starts_with("TOML syntax error at line 2, column"),
        "{e}"
    );
    assert!(!e.message.contains('\n'), "one line: {e:?}");
}

#[test]
fn unknown_keys_name_their_table() {
    let e = err(&format!("foo = 1\n{MINIMAL}"));
    assert_eq!(e.to_string(), "unknown key \"foo\"");

    let e = err(&http_with("colour = \"x\"", ""));
    assert_eq!(e.path, "http[0]");
    assert_eq!(e.message, "unknown key \"colour\"");

    let e = err(&http_with("bind_addr = \"x\"", ""));
    assert_eq!(
        e.message,
        "unknown key \"bind_addr\" (did you mean \"bind-addr\"?)"
    );

    let e = err(&http_with("Max_Connections = 3", ""));
    assert_eq!(
        e.to_string(),
        "http[0]: unknown key \"Max_Connections\" (did you mean \"max-connections\"?)"
    );

    let e = err(&http_with("", "timout = \"1s\""));
    assert_eq!(
        e.to_string(),
        "http[0].output[0]: unknown key \"timout\" (did you mean \"timeout\"?)"
    );

    let e = err(&udp_with("", "mtuu = 1"));
    assert_eq!(e.path, "udp[0].output[0]");
    let e = err(&udp_with("precison = \"s\"", ""));
    assert_eq!(
        e.to_string(),
        "udp[0]: unknown key \"precison\" (did you mean \"precision\"?)"
    );
}

#[test]
fn wrong_types_name_the_key() {
    let cases: &[(String, &str)] = &[
        (format!("threads = \"4\"\n{MINIMAL}"), "threads: expected an integer, found a string"),
        (format!("pin-threads = 1\n{MINIMAL}"), "pin-threads: expected true or false, found an integer"),
        (
            format!("shutdown-timeout = 10\n{MINIMAL}"),
            "shutdown-timeout: expected a duration string such as \"10s\", found an integer",
        ),
        ("http = 1".into(), "http: expected an array of tables ([[http]]), found an integer"),
        ("[http]\nbind-addr = \"127.0.0.1:1\"".into(), "http: expected an array of tables ([[http]]), found a table"),
        ("http = [1]".into(), "http[0]: expected a table, found an integer"),
        (http_with("max-body-size-mb = 1.5", ""), "http[0].max-body-size-mb: expected an integer, found a float"),
        (http_with("bind-addr2 = 1", "").replace("bind-addr2", "name"), "http[0].name: expected a string, found an integer"),
        (http_with("", "gzip = \"yes\""), "http[0].output[0].gzip: expected true or false, found a string"),
        (http_with("", "timeout = 5"), "http[0].output[0].timeout: expected a duration string such as \"10s\", found an integer"),
        (udp_with("read-buffer = \"8M\"", ""), "udp[0].read-buffer: expected an integer, found a string"),
        (udp_with("", "mtu = true"), "udp[0].output[0].mtu: expected an integer, found a boolean"),
    ];
    for (text, want) in cases {
        assert_eq!(err(text).to_string(), *want, "for:\n{text}");
    }
}

#[test]
fn bad_values_name_the_key() {
    let cases: &[(String, &str)] = &[
        (
            http_with("", "timeout = \"10x\""),
            "http[0].output[0].timeout: invalid duration \"10x\": unknown unit \"x\"",
        ),
        (
            http_with("", "timeout = \"0s\""),
            "http[0].output[0].timeout: must be greater than 0, got \"0s\"",
        ),
        (
            http_with("read-timeout = \"-1s\"", ""),
            "http[0].read-timeout: invalid duration \"-1s\": negative durations are not allowed",
        ),
        (
            format!("log-level = \"trace\"\n{MINIMAL}"),
            "log-level: unknown level \"trace\" (use error, warn, info or debug)",
        ),
        (
            format!("threads = -1\n{MINIMAL}"),
            "threads: must be at least 0, got -1",
        ),
        (
            format!("threads = 5000\n{MINIMAL}"),
            "threads: must be at most 1024, got 5000",
        ),
        (
            format!("spool-dir = \"\"\n{MINIMAL}"),
            "spool-dir: must not be empty",
        ),
        (
            http_with("ack = \"most\"", ""),
            "http[0].ack: unknown value \"most\" (use any, quorum or all)",
        ),
        (
            http_with("max-body-size-mb = 0", ""),
            "http[0].max-body-size-mb: must be at least 1, got 0",
        ),
        (
            http_with("max-connections = 0", ""),
            "http[0].max-connections: must be at least 1, got 0",
        ),
        (
            http_with("", "concurrency = 0"),
            "http[0].output[0].concurrency: must be at least 1, got 0",
        ),
        (
            http_with("", "catch-up-live-percent = 101"),
            "http[0].output[0].catch-up-live-percent: must be at most 100, got 101",
        ),
        (
            http_with("", "buffer-size-mb = -1"),
            "http[0].output[0].buffer-size-mb: must be at least 0, got -1",
        ),
        (
            http_with("", "spool-size-mb = 9223372036854775807"),
            "http[0].output[0].spool-size-mb: 9223372036854775807 is too large",
        ),
        (
            udp_with("precision = \"sec\"", ""),
            "udp[0].precision: unknown precision \"sec\" (use n, ns, u, us, µ, ms, s, m or h)",
        ),
        (
            udp_with("read-buffer = -1", ""),
            "udp[0].read-buffer: must be at least 0, got -1",
        ),
        (
            udp_with("", "mtu = 63"),
            "udp[0].output[0].mtu: must be 0 (default) or between 64 and 65507, got 63",
        ),
        (
            udp_with("", "mtu = 65508"),
            "udp[0].output[0].mtu: must be at most 65507, got 65508",
        ),
        (
            udp_with("", "").replace("127.0.0.1:8089", "127.0.0.1"),
            "udp[0].output[0].location: expected host:port, got \"127.0.0.1\"",
        ),
        (
            udp_with("", "").replace("127.0.0.1:8089", "127.0.0.1:0"),
            "udp[0].output[0].location: port 0 in \"127.0.0.1:0\" is not a destination",
        ),
        (
            http_with("", "").replace("127.0.0.1:9096", "127.0.0.1:99999"),
            "http[0].bind-addr: invalid port in \"127.0.0.1:99999\"",
        ),
        (
            http_with("", "").replace("bind-addr = \"127.0.0.1:9096\"", ""),
            "http[0].bind-addr: missing (e.g. \"127.0.0.1:9096\")",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text).to_string(), *want, "for:\n{text}");
    }
}

#[test]
fn mtu_bounds_are_inclusive() {
    for mtu in [MIN_MTU, MAX_MTU] {
        let c = parse(&udp_with("", &format!("mtu = {mtu}"))).unwrap();
        assert_eq!(c.udp[0].outputs[0].mtu, mtu);
    }
}

#[test]
fn every_precision_spelling() {
    let table = [
        ("", Precision::Nanoseconds),
        ("n", Precision::Nanoseconds),
        ("ns", Precision::Nanoseconds),
        ("u", Precision::Microseconds),
        ("us", Precision::Microseconds),
        ("µ", Precision::Microseconds),
        ("ms", Precision::Milliseconds),
        ("s", Precision::Seconds),
        ("m", Precision::Minutes),
        ("h", Precision::Hours),
    ];
    for (spelling, want) in table {
        let c = parse(&udp_with(&format!("precision = \"{spelling}\""), "")).unwrap();
        assert_eq!(c.udp[0].precision, want, "precision = {spelling:?}");
    }
}

#[test]
fn structural_rules() {
    assert_eq!(
        err("").to_string(),
        "no listeners: add at least one [[http]] or [[udp]] section"
    );
    assert_eq!(
        err("threads = 2").to_string(),
        "no listeners: add at least one [[http]] or [[udp]] section"
    );
    assert_eq!(
        err("[[http]]\nbind-addr = \"127.0.0.1:1\"").to_string(),
        "http[0].output: at least one output is required"
    );
    assert_eq!(
        err("[[udp]]\nbind-addr = \"127.0.0.1:1\"\noutput = []").to_string(),
        "udp[0].output: at least one output is required"
    );
    assert_eq!(
        err("[[http]]\nbind-addr = \"127.0.0.1:1\"\n[[http.output]]\nname = \"x\"").to_string(),
        "http[0].output[0].location: missing (e.g. \"http://127.0.0.1:8086/write\")"
    );
}

#[test]
fn duplicate_output_names() {
    let text = r#"
        [[http]]
        bind-addr = "127.0.0.1:9096"
        output = [ { name = "a", location = "http://h1:8086/write" },
                   { name = "b", location = "http://h2:8086/write" },
                   { name = "a", location = "http://h3:8086/write" } ]
    "#;
    assert_eq!(
        err(text).to_string(),
        "http[0].output[2].name: duplicate output name \"a\" (also used by output[0])"
    );
    // Unnamed outputs are named after their location, so the same backend twice clashes.
    let text = r#"
        [[udp]]
        bind-addr = "127.0.0.1:9096"
        output = [ { location = "127.0.0.1:8089" }, { location = "127.0.0.1:8089" } ]
    "#;
    assert_eq!(
        err(text).to_string(),
        "udp[0].output[1].name: duplicate output name \"127.0.0.1:8089\" (also used by output[0])"
    );
    // The same name under two listeners is fine.
    let text = format!(
        "{}{}",
        http_with("name = \"l1\"", "name = \"o\""),
        http_with("name = \"l2\"", "name = \"o\"").replace(":9096", ":9097")
    );
    assert!(parse(&text).is_ok());
}

#[test]
fn duplicate_listener_names_across_protocols() {
    let text = format!(
        "{}{}",
        http_with("name = \"a\"", ""),
        http_with("name = \"a\"", "").replace(":9096", ":9097")
    );
    assert_eq!(
        err(&text).to_string(),
        "http[1].name: duplicate listener name \"a\" (also used by http[0])"
    );
    let text = format!(
        "{}{}",
        http_with("name = \"a\"", ""),
        udp_with("name = \"a\"", "")
    );
    assert_eq!(
        err(&text).to_string(),
        "udp[0].name: duplicate listener name \"a\" (also used by http[0])"
    );
}

#[test]
fn duplicate_and_overlapping_binds() {
    let text = format!(
        "{}{}",
        http_with("name = \"a\"", ""),
        http_with("name = \"b\"", "")
    );
    assert_eq!(
        err(&text).to_string(),
        "http[1].bind-addr: duplicate bind address 127.0.0.1:9096 (also used by http[0])"
    );
    let text = format!(
        "{}{}",
        udp_with("name = \"a\"", ""),
        udp_with("name = \"b\"", "").replace("127.0.0.1:9096", ":9096")
    );
    assert_eq!(
        err(&text).to_string(),
        "udp[1].bind-addr: bind address 0.0.0.0:9096 overlaps 127.0.0.1:9096 of udp[0]"
    );
    let text = format!(
        "{}{}",
        http_with("name = \"a\"", ""),
        http_with("name = \"b\"", "").replace("127.0.0.1:9096", "[::]:9096")
    );
    assert!(err(&text).message.contains("overlaps"));
    // Different ports, different protocols, or port 0 (ephemeral): no clash.
    let text = format!(
        "{}{}",
        http_with("name = \"a\"", ""),
        http_with("name = \"b\"", "").replace(":9096", ":9097")
    );
    assert!(parse(&text).is_ok());
    assert!(parse(&format!("{}{}", http_with("", ""), udp_with("", ""))).is_ok());
    let zero = http_with("", "").replace(":9096", ":0");
    let text = format!(
        "{}{}",
        zero.replace("[[http]]", "[[http]]\nname = \"a\""),
        zero.replace("[[http]]", "[[http]]\nname = \"b\"")
    );
    assert!(parse(&text).is_ok());
}

#[test]
fn empty_strings_mean_default_as_in_the_original() {
    let c = parse(&http_with(
        "name = \"\"\ndefault-retention-policy = \"\"\nssl-combined-pem = \"\"\nread-timeout = \"\"",
        "name = \"\"\ntimeout = \"\"\nmax-delay-interval = \"\"\nhttp-user = \"u\"\nhttp-pass = \"\"",
    ))
    .unwrap();
    let h = &c.http[0];
    assert_eq!(h.name, "http://127.0.0.1:9096");
    assert_eq!(h.default_retention_policy, None);
    assert_eq!(h.ssl_combined_pem, None);
    assert_eq!(h.read_timeout, DEFAULT_READ_TIMEOUT);
    assert_eq!(h.outputs[0].name, "http://127.0.0.1:8086/write");
    assert_eq!(h.outputs[0].timeout, DEFAULT_HTTP_TIMEOUT);
    assert_eq!(h.outputs[0].max_delay_interval, DEFAULT_MAX_DELAY_INTERVAL);
    assert_eq!(
        h.outputs[0].basic_auth, None,
        "only both credentials take effect"
    );
}

#[test]
fn locations() {
    let ok = |url: &str| parse_location(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let l = ok("http://localhost");
    assert_eq!(
        (l.https, l.host.as_str(), l.port, l.path.as_str()),
        (false, "localhost", 80, "/write")
    );
    let l = ok("https://db.example/");
    assert_eq!((l.https, l.port, l.path.as_str()), (true, 443, "/write"));
    let l = ok("http://[::1]:8086/write?u=x#frag");
    assert_eq!(
        (l.host.as_str(), l.port, l.path.as_str()),
        ("::1", 8086, "/write")
    );
    let l = ok("http://[fe80::1]/proxy/write");
    assert_eq!(
        (l.host.as_str(), l.port, l.path.as_str()),
        ("fe80::1", 80, "/proxy/write")
    );
    let l = ok("http://my_host-1.example:8086?db=x");
    assert_eq!(
        (l.host.as_str(), l.port, l.path.as_str()),
        ("my_host-1.example", 8086, "/write")
    );

    let bad = [
        ("127.0.0.1:8086/write", "expected http://host[:port]/write"),
        (
            "udp://127.0.0.1:8089",
            "scheme \"udp\" is not http or https",
        ),
        ("http://", "missing host"),
        ("http://:8086/write", "missing host"),
        ("http://h:0/write", "invalid port \"0\""),
        ("http://h:65536/write", "invalid port \"65536\""),
        ("http://h:x/write", "invalid port \"x\""),
        (
            "http://u:p@h/write",
            "credentials in the URL are not supported",
        ),
        ("http://[::1/write", "unclosed '['"),
        ("http://[zz]/write", "invalid IPv6 address"),
        ("http://[::1]x/write", "unexpected text after ']'"),
        ("http://h h/write", "invalid character in host"),
        ("http://h/wr ite", "must not contain spaces"),
    ];
    for (url, want) in bad {
        match parse_location(url) {
            Ok(l) => panic!("{url} accepted: {l:?}"),
            Err(e) => assert!(e.contains(want), "{url}: {e}"),
        }
    }
    let e = err(&http_with("", "").replace("http://127.0.0.1:8086/write", "ftp://x/write"));
    assert_eq!(
        e.to_string(),
        "http[0].output[0].location: invalid URL \"ftp://x/write\": scheme \"ftp\" is not http or https"
    );
}

#[test]
fn bind_addresses() {
    let ok = |text: &str| bind_address("b", text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(ok("127.0.0.1:9096"), "127.0.0.1:9096".parse().unwrap());
    assert_eq!(ok(":9096"), "0.0.0.0:9096".parse().unwrap());
    assert_eq!(ok("[::]:9096"), "[::]:9096".parse().unwrap());
    assert_eq!(ok("localhost:9096").port(), 9096);
    assert!(ok("localhost:9096").ip().is_loopback());
    for bad in ["9096", "", ":", ":x", "127.0.0.1", "127.0.0.1:"] {
        assert!(bind_address("b", bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn duration_table() {
    let ns = Duration::from_nanos;
    let table: &[(&str, Duration)] = &[
        ("0", Duration::ZERO),
        ("-0", Duration::ZERO),
        ("+0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("-0s", Duration::ZERO),
        ("1ns", ns(1)),
        ("250us", Duration::from_micros(250)),
        ("250µs", Duration::from_micros(250)),
        ("250μs", Duration::from_micros(250)),
        ("300ms", Duration::from_millis(300)),
        ("10s", Duration::from_secs(10)),
        ("+10s", Duration::from_secs(10)),
        ("1.5s", Duration::from_millis(1500)),
        (".5s", Duration::from_millis(500)),
        ("1.s", Duration::from_secs(1)),
        ("1m30s", Duration::from_secs(90)),
        ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
        ("1h1m1s1ms1us1ns", ns(3_661_001_001_001)),
        ("1.5h", Duration::from_secs(5400)),
        ("168h", Duration::from_secs(168 * 3600)),
        ("0.000000001s", ns(1)),
        ("0.0000000019s", ns(1)),
        ("1.000000000000000000000000009s", Duration::from_secs(1)),
        ("9223372036854775807ns", ns(i64::MAX as u64)),
        ("2562047h", Duration::from_secs(2_562_047 * 3600)),
    ];
    for &(text, want) in table {
        assert_eq!(parse_duration(text), Ok(want), "{text:?}");
    }

    let errors: &[(&str, &str)] = &[
        ("", "invalid duration \"\": empty"),
        ("-", "invalid duration \"-\": no number"),
        (
            "10",
            "invalid duration \"10\": missing unit (use ns, us, ms, s, m or h)",
        ),
        (
            "00",
            "invalid duration \"00\": missing unit (use ns, us, ms, s, m or h)",
        ),
        ("10x", "invalid duration \"10x\": unknown unit \"x\""),
        ("10 s", "invalid duration \"10 s\": unknown unit \" s\""),
        ("1S", "invalid duration \"1S\": unknown unit \"S\""),
        ("s", "invalid duration \"s\": expected a number"),
        (".s", "invalid duration \".s\": expected a number"),
        (
            "1.5.2s",
            "invalid duration \"1.5.2s\": missing unit (use ns, us, ms, s, m or h)",
        ),
        (
            "-1.5h",
            "invalid duration \"-1.5h\": negative durations are not allowed",
        ),
        (
            "9223372036854775808ns",
            "invalid duration \"9223372036854775808ns\": out of range",
        ),
        ("2562048h", "invalid duration \"2562048h\": out of range"),
        (
            "2562047h2562047h",
            "invalid duration \"2562047h2562047h\": out of range",
        ),
        (
            "99999999999999999999999h",
            "invalid duration \"99999999999999999999999h\": out of range",
        ),
    ];
    for &(text, want) in errors {
        assert_eq!(parse_duration(text), Err(want.to_string()), "{text:?}");
    }
}

#[test]
fn base64_matches_rfc4648_vectors() {
    let table = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (input, want) in table {
        let mut out = String::new();
        base64_encode(input.as_bytes(), &mut out);
        assert_eq!(out, want, "{input:?}");
    }
    let auth = BasicAuth {
        user: "Aladdin".into(),
        pass: "open sesame".into(),
    };
    assert_eq!(auth.header_value(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

#[test]
fn users_as_sections_and_from_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("users");
    std::fs::write(
        &file,
        format!("# name:sha256\n\n  alice : {SECRET_SHA256}\nbob:{SECRET_SHA256}\n"),
    )
    .expect("write users file");
    let text = format!(
        "[[http]]\nbind-addr = \"127.0.0.1:9096\"\nusers-file = \"{}\"\n\
         [[http.users]]\nname = \"carol\"\npassword-sha256 = \"{SECRET_SHA256}\"\n\
         [[http.output]]\nlocation = \"http://127.0.0.1:8086/write\"\n",
        file.display()
    );
    let c = parse(&text).expect("users config");
    let auth = c.http[0].auth.as_ref().expect("auth on");
    let names: Vec<&str> = auth.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["carol", "alice", "bob"]);
    assert!(!auth.metrics, "pages stay open by default");
    assert!(c.http[0].forward_credentials);

    // Only a file: auth is on too; an empty string means none, as elsewhere.
    let only_file = parse(&http_with(
        &format!("users-file = \"{}\"", file.display()),
        "",
    ))
    .expect("file only");
    assert_eq!(
        only_file.http[0].auth.as_ref().map(|a| a.users.len()),
        Some(2)
    );
    assert_eq!(
        parse(&http_with("users-file = \"\"", "")).unwrap().http[0].auth,
        None
    );
}

#[test]
fn bad_credentials_name_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let users_file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write users file");
        format!("users-file = \"{}\"", path.display())
    };
    let cases = [
        (
            "users = [ { name = \"a\", password-sha256 = \"secret\" } ]".to_string(),
            "http[0].users[0].password-sha256",
            "64 hex digits",
        ),
        (
            format!("users = [ {{ name = \"a\", password-sha256 = \"{}\" }} ]", "g".repeat(64)),
            "http[0].users[0].password-sha256",
            "64 hex digits",
        ),
        (
            format!("users = [ {{ name = \"a:b\", password-sha256 = \"{SECRET_SHA256}\" }} ]"),
            "http[0].users[0].name",
            "':'",
        ),
        (
            format!("users = [ {{ name = \"\", password-sha256 = \"{SECRET_SHA256}\" }} ]"),
            "http[0].users[0].name",
            "empty",
        ),
        (
            "users = [ { name = \"a\" } ]".to_string(),
            "http[0].users[0].password-sha256",
            "missing",
        ),
        (
            format!("users = [ {{ password-sha256 = \"{SECRET_SHA256}\" }} ]"),
            "http[0].users[0].name",
            "missing",
        ),
        (
            "users = [ {} ]".to_string(),
            "http[0].users[0]",
            "token-sha256",
        ),
        (
            format!("users = [ {{ name = \"a\", token-sha256 = \"{SECRET_SHA256}\" }} ]"),
            "http[0].users[0]",
            "only token-sha256",
        ),
        (
            format!("users = [ {{ name = \"a\", password = \"{SECRET_SHA256}\" }} ]"),
            "http[0].users[0]",
            "unknown key \"password\"",
        ),
        (
            format!(
                "users = [ {{ name = \"a\", password-sha256 = \"{SECRET_SHA256}\" }},\n\
                 {{ name = \"a\", password-sha256 = \"{SECRET_SHA256}\" }} ]"
            ),
            "http[0].users[1].name",
            "duplicate user \"a\" (also in http[0].users[0])",
        ),
        (
            format!(
                "users = [ {{ token-sha256 = \"{SECRET_SHA256}\" }}, {{ token-sha256 = \"{SECRET_SHA256}\" }} ]"
            ),
            "http[0].users[1].token-sha256",
            "duplicate token",
        ),
        ("users = \"a\"".to_string(), "http[0].users", "array of tables"),
        ("auth-metrics = true".to_string(), "http[0].auth-metrics", "needs users"),
        ("auth-metrics = 1".to_string(), "http[0].auth-metrics", "true or false"),
        ("forward-credentials = \"no\"".to_string(), "http[0].forward-credentials", "true or false"),
        (
            "users-file = \"/nonexistent/users\"".to_string(),
            "http[0].users-file",
            "cannot read",
        ),
        (users_file("empty", "# nobody yet\n"), "http[0].users-file", "has no users"),
        (users_file("nocolon", "alice\n"), "http[0].users-file", "line 1: expected name:sha256hex"),
        (
            users_file("badhex", &format!("# c\nalice:{SECRET_SHA256}\nbob:xyz\n")),
            "http[0].users-file",
            "line 3: expected the SHA-256",
        ),
        (
            users_file("dup", &format!("alice:{SECRET_SHA256}\nalice:{SECRET_SHA256}\n")),
            "http[0].users-file",
            "line 2: duplicate user \"alice\"",
        ),
    ];
    for (listener, path, needle) in cases {
        let e = err(&http_with(&listener, ""));
        assert_eq!(e.path, path, "{listener}: {e}");
        assert!(e.message.contains(needle), "{listener}: {e}");
    }
}

#[test]
fn suggestions() {
    let known = ["bind-addr", "name", "output", "max-body-size-mb"];
    assert_eq!(suggest("bind_addr", &known), Some("bind-addr"));
    assert_eq!(suggest("BIND-ADDR", &known), Some("bind-addr"));
    assert_eq!(suggest("nmae", &known), Some("name"));
    assert_eq!(suggest("outputs", &known), Some("output"));
    assert_eq!(suggest("completely-different", &known), None);
}

#[test]
fn output_api_comes_from_the_location_path() {
    let c = parse(MINIMAL).unwrap();
    let o = &c.http[0].outputs[0];
    assert_eq!(
        (o.api.clone(), o.reads, o.token.clone()),
        (OutputApi::V1, true, None)
    );
    assert!(o.takes_statements());

    let v2 = "[[http]]\nbind-addr = \"127.0.0.1:9096\"\n[[http.output]]\n\
              location = \"http://127.0.0.1:8428/api/v2/write\"\norg = \"-\"\ntoken = \"t0k\"\n";
    let c = parse(v2).unwrap();
    let o = &c.http[0].outputs[0];
    assert_eq!(
        o.api,
        OutputApi::V2 {
            org: "-".to_string()
        }
    );
    assert!(!o.reads && !o.takes_statements());
    assert_eq!(o.own_authorization().as_deref(), Some("Token t0k"));
    // Printed configs never show the token.
    assert!(!format!("{o:?}").contains("t0k"));

    let v3 = "[[http]]\nbind-addr = \"127.0.0.1:9096\"\n[[http.output]]\n\
              location = \"https://db.example:8181/proxy/api/v3/write_lp\"\ntoken = \"x\"\n";
    let o = &parse(v3).unwrap().http[0].outputs[0];
    assert_eq!(o.api, OutputApi::V3);
    assert_eq!(o.location.path, "/proxy/api/v3/write_lp");
    assert!(o.reads && !o.takes_statements());

    // A write-only 1.x output takes no statements either.
    let o = &parse(&http_with("", "reads = false")).unwrap().http[0].outputs[0];
    assert!(!o.reads && !o.takes_statements());
    let o = &parse(&http_with("", "http-user = \"u\"\nhttp-pass = \"p\""))
        .unwrap()
        .http[0]
        .outputs[0];
    assert_eq!(o.own_authorization().as_deref(), Some("Basic dTpw"));
}

#[test]
fn output_api_mistakes_name_the_key() {
    let e = err(
        "[[http]]\nbind-addr = \"127.0.0.1:9096\"\n[[http.output]]\n\
                 location = \"http://127.0.0.1:8086/api/v2/write\"\n",
    );
    assert_eq!(e.path, "http[0].output[0].org");
    assert!(e.message.contains("needs the organisation"), "{e}");
    let e = err(&http_with("", "org = \"o\""));
    assert_eq!(e.path, "http[0].output[0].org");
    assert!(e.message.contains("v1 output"), "{e}");
    let e = err(&http_with(
        "",
        "token = \"t\"\nhttp-user = \"u\"\nhttp-pass = \"p\"",
    ));
    assert_eq!(e.path, "http[0].output[0].token");
    let e = err(&http_with("", "reads = \"no\""));
    assert_eq!(e.path, "http[0].output[0].reads");
    let e = err(&http_with("", "token = 5"));
    assert_eq!(e.path, "http[0].output[0].token");
}

#[test]
fn lookup_puts_ipv4_first_and_keeps_every_address() {
    let addrs = lookup("localhost", 8086).expect("localhost resolves");
    assert!(!addrs.is_empty());
    let first_v6 = addrs
        .iter()
        .position(|a| a.is_ipv6())
        .unwrap_or(addrs.len());
    assert!(addrs[first_v6..].iter().all(|a| a.is_ipv6()), "{addrs:?}");
    assert_eq!(
        lookup("127.0.0.1", 1).unwrap(),
        vec!["127.0.0.1:1".parse().unwrap()]
    );
}
