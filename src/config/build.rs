//! Stage 2: raw values into the checked `Config`: defaults, ranges, cross-field rules.

use super::*;

pub(super) fn build(raw: RawConfig) -> Result<Config, ConfigError> {
    let threads = match integer_in(
        "threads",
        raw.threads,
        DEFAULT_THREADS as i64,
        0,
        MAX_THREADS as i64,
    )? {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let spool_dir = raw
        .spool_dir
        .unwrap_or_else(|| DEFAULT_SPOOL_DIR.to_string());
    if spool_dir.is_empty() {
        return Err(error("spool-dir", "must not be empty"));
    }
    let log_level = match raw.log_level.as_deref() {
        None => DEFAULT_LOG_LEVEL,
        Some("error") => LogLevel::Error,
        Some("warn") => LogLevel::Warn,
        Some("info") => LogLevel::Info,
        Some("debug") => LogLevel::Debug,
        Some(other) => {
            return Err(error(
                "log-level",
                format!("unknown level \"{other}\" (use error, warn, info or debug)"),
            ))
        }
    };
    let shutdown_timeout = duration(
        "shutdown-timeout",
        raw.shutdown_timeout,
        DEFAULT_SHUTDOWN_TIMEOUT,
        true,
    )?;

    if raw.http.is_empty() && raw.udp.is_empty() {
        return Err(error(
            "",
            "no listeners: add at least one [[http]] or [[udp]] section",
        ));
    }
    let http = raw
        .http
        .into_iter()
        .map(build_http)
        .collect::<Result<Vec<_>, _>>()?;
    let udp = raw
        .udp
        .into_iter()
        .map(build_udp)
        .collect::<Result<Vec<_>, _>>()?;

    check_listener_names(&http, &udp)?;
    check_binds("http", http.iter().map(|h| h.bind_addr))?;
    check_binds("udp", udp.iter().map(|u| u.bind_addr))?;

    Ok(Config {
        threads,
        pin_threads: raw.pin_threads.unwrap_or(DEFAULT_PIN_THREADS),
        spool_dir: PathBuf::from(spool_dir),
        log_level,
        shutdown_timeout,
        http,
        udp,
    })
}

pub(super) fn build_http(raw: RawHttp) -> Result<HttpConfig, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let bind_text = raw
        .bind_addr
        .ok_or_else(|| error(at("bind-addr"), "missing (e.g. \"127.0.0.1:9096\")"))?;
    let bind_addr = bind_address(&at("bind-addr"), &bind_text)?;
    let ssl_combined_pem = raw
        .ssl_combined_pem
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let scheme = if ssl_combined_pem.is_some() {
        "https"
    } else {
        "http"
    };
    let name = non_empty(raw.name).unwrap_or_else(|| format!("{scheme}://{bind_text}"));
    // Accepted (and unused) without a PEM, so a file that sets every key to its
    // default, TLS off, still loads.
    let ssl_min_version = match raw.ssl_min_version.as_deref() {
        None | Some("") => DEFAULT_SSL_MIN_VERSION,
        Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(other) => {
            return Err(error(
                at("ssl-min-version"),
                format!("unknown TLS version \"{other}\" (use \"1.2\" or \"1.3\")"),
            ))
        }
    };
    let ack = match raw.ack.as_deref() {
        None => DEFAULT_ACK,
        Some("any") => Ack::Any,
        Some("quorum") => Ack::Quorum,
        Some("all") => Ack::All,
        Some(other) => {
            return Err(error(
                at("ack"),
                format!("unknown value \"{other}\" (use any, quorum or all)"),
            ))
        }
    };
    let max_body_mb = integer_in(
        &at("max-body-size-mb"),
        raw.max_body_size_mb,
        DEFAULT_MAX_BODY_SIZE_MB as i64,
        1,
        i64::MAX,
    )?;
    let max_body_size = bytes(&at("max-body-size-mb"), max_body_mb, MIB)?;
    let read_timeout = duration(
        &at("read-timeout"),
        raw.read_timeout,
        DEFAULT_READ_TIMEOUT,
        false,
    )?;
    let idle_timeout = duration(
        &at("idle-timeout"),
        raw.idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
        false,
    )?;
    let read_wait = duration(&at("read-wait"), raw.read_wait, DEFAULT_READ_WAIT, true)?;
    let max_connections = integer_in(
        &at("max-connections"),
        raw.max_connections,
        DEFAULT_MAX_CONNECTIONS as i64,
        1,
        i64::MAX,
    )? as usize;

    let auth = build_auth(p, raw.users, raw.users_file, raw.auth_metrics)?;

    if raw.outputs.is_empty() {
        return Err(error(at("output"), "at least one output is required"));
    }
    let outputs = raw
        .outputs
        .into_iter()
        .map(build_http_output)
        .collect::<Result<Vec<_>, _>>()?;
    check_output_names(p, outputs.iter().map(|o| o.name.as_str()))?;

    Ok(HttpConfig {
        name,
        bind_addr,
        ssl_combined_pem,
        ssl_min_version,
        default_retention_policy: non_empty(raw.default_retention_policy),
        ack,
        max_body_size,
        read_timeout,
        idle_timeout,
        read_wait,
        max_connections,
        auth,
        forward_credentials: raw
            .forward_credentials
            .unwrap_or(DEFAULT_FORWARD_CREDENTIALS),
        outputs,
    })
}

pub(super) fn build_http_output(raw: RawHttpOutput) -> Result<HttpOutput, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let url = raw.location.ok_or_else(|| {
        error(
            at("location"),
            "missing (e.g. \"http://127.0.0.1:8086/write\")",
        )
    })?;
    let location = parse_location(&url).map_err(|m| error(at("location"), m))?;
    let name = non_empty(raw.name).unwrap_or_else(|| url.clone());

    let buffer_mb = integer_in(
        &at("buffer-size-mb"),
        raw.buffer_size_mb,
        DEFAULT_BUFFER_SIZE_MB as i64,
        0,
        i64::MAX,
    )?;
    // 0 means "default" here, as in the original, not "no batching".
    let batch_kb = match integer_in(
        &at("max-batch-kb"),
        raw.max_batch_kb,
        DEFAULT_MAX_BATCH_KB as i64,
        0,
        i64::MAX,
    )? {
        0 => DEFAULT_MAX_BATCH_KB as i64,
        n => n,
    };
    let spool_mb = integer_in(
        &at("spool-size-mb"),
        raw.spool_size_mb,
        DEFAULT_SPOOL_SIZE_MB as i64,
        0,
        i64::MAX,
    )?;
    let concurrency = integer_in(
        &at("concurrency"),
        raw.concurrency,
        DEFAULT_CONCURRENCY as i64,
        1,
        i64::MAX,
    )? as usize;

    let skip_tls_verification = raw
        .skip_tls_verification
        .unwrap_or(DEFAULT_SKIP_TLS_VERIFICATION);
    let ca_file = non_empty(raw.ca_file).map(PathBuf::from);
    if ca_file.is_some() && skip_tls_verification {
        return Err(error(
            at("ca-file"),
            "set together with skip-tls-verification = true, which ignores it; remove one",
        ));
    }

    // The original only used credentials when both were set; keep that.
    let basic_auth = match (non_empty(raw.http_user), non_empty(raw.http_pass)) {
        (Some(user), Some(pass)) => Some(BasicAuth { user, pass }),
        _ => None,
    };

    let token = non_empty(raw.token).map(Secret);
    if token.is_some() && basic_auth.is_some() {
        return Err(error(
            at("token"),
            "set together with http-user/http-pass; the backend gets one Authorization: keep one",
        ));
    }
    let org = non_empty(raw.org);
    let (api, default_reads) = match api_of_path(&location.path) {
        PathApi::V1 => (OutputApi::V1, DEFAULT_READS_V1),
        PathApi::V3 => (OutputApi::V3, DEFAULT_READS_V3),
        PathApi::V2 => {
            let org = org.clone().ok_or_else(|| {
                error(
                    at("org"),
                    "missing: a /api/v2/write location needs the organisation (InfluxDB 1.8 and \
                     VictoriaMetrics take any name, e.g. \"-\")",
                )
            })?;
            (OutputApi::V2 { org }, DEFAULT_READS_V2)
        }
    };
    if org.is_some() && !matches!(api, OutputApi::V2 { .. }) {
        return Err(error(
            at("org"),
            format!(
                "only used by a location ending in {V2_WRITE_PATH}; this one is a {} output: \
                 remove org or fix the location",
                api.name()
            ),
        ));
    }

    let max_batch = bytes(&at("max-batch-kb"), batch_kb, KIB)?;
    // A limit the file sets bounds every merge; without one, merges may be larger.
    let coalesce_limit = if raw.max_batch_kb.is_some_and(|n| n > 0) {
        max_batch
    } else {
        (DEFAULT_COALESCE_KB * KIB) as usize
    };
    Ok(HttpOutput {
        name,
        location,
        // 0 would mean "wait forever" to an HTTP client, yet a client's answer waits
        // for the largest timeout (README: HTTP API): refuse it.
        timeout: duration(&at("timeout"), raw.timeout, DEFAULT_HTTP_TIMEOUT, false)?,
        skip_tls_verification,
        ca_file,
        buffer_size: bytes(&at("buffer-size-mb"), buffer_mb, MIB)?,
        coalesce_limit,
        max_delay_interval: duration(
            &at("max-delay-interval"),
            raw.max_delay_interval,
            DEFAULT_MAX_DELAY_INTERVAL,
            false,
        )?,
        concurrency,
        spool_size: bytes(&at("spool-size-mb"), spool_mb, MIB)? as u64,
        spool_max_age: duration(
            &at("spool-max-age"),
            raw.spool_max_age,
            DEFAULT_SPOOL_MAX_AGE,
            false,
        )?,
        gzip: raw.gzip.unwrap_or(DEFAULT_GZIP),
        catch_up_live_percent: integer_in(
            &at("catch-up-live-percent"),
            raw.catch_up_live_percent,
            DEFAULT_CATCH_UP_LIVE_PERCENT as i64,
            0,
            100,
        )? as u32,
        basic_auth,
        api,
        token,
        reads: raw.reads.unwrap_or(default_reads),
        rebuild_on_start: raw.rebuild_on_start.unwrap_or(false),
    })
}

pub(super) fn build_udp(raw: RawUdp) -> Result<UdpConfig, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let bind_text = raw
        .bind_addr
        .ok_or_else(|| error(at("bind-addr"), "missing (e.g. \"127.0.0.1:9096\")"))?;
    let bind_addr = bind_address(&at("bind-addr"), &bind_text)?;
    let name = non_empty(raw.name).unwrap_or_else(|| format!("udp://{bind_text}"));
    // SO_RCVBUF takes a C int.
    let read_buffer = integer_in(
        &at("read-buffer"),
        raw.read_buffer,
        DEFAULT_READ_BUFFER as i64,
        0,
        i64::from(i32::MAX),
    )? as usize;
    let precision = match raw.precision.as_deref() {
        None => DEFAULT_PRECISION,
        Some(s) => parse_precision(s).ok_or_else(|| {
            error(
                at("precision"),
                format!("unknown precision \"{s}\" (use n, ns, u, us, µ, ms, s, m or h)"),
            )
        })?,
    };

    if raw.outputs.is_empty() {
        return Err(error(at("output"), "at least one output is required"));
    }
    let outputs = raw
        .outputs
        .into_iter()
        .map(build_udp_output)
        .collect::<Result<Vec<_>, _>>()?;
    check_output_names(p, outputs.iter().map(|o| o.name.as_str()))?;

    Ok(UdpConfig {
        name,
        bind_addr,
        read_buffer,
        precision,
        outputs,
    })
}

pub(super) fn build_udp_output(raw: RawUdpOutput) -> Result<UdpOutput, ConfigError> {
    let p = &raw.path;
    let at = |key: &str| format!("{p}.{key}");
    let text = raw
        .location
        .ok_or_else(|| error(at("location"), "missing (e.g. \"127.0.0.1:8089\")"))?;
    let location = udp_target(&text).map_err(|m| error(at("location"), m))?;
    let mtu = match integer_in(&at("mtu"), raw.mtu, DEFAULT_MTU as i64, 0, MAX_MTU as i64)? {
        // 0 means "default", as in the original.
        0 => DEFAULT_MTU,
        n if (n as usize) < MIN_MTU => {
            return Err(error(
                at("mtu"),
                format!("must be 0 (default) or between {MIN_MTU} and {MAX_MTU}, got {n}"),
            ))
        }
        n => n as usize,
    };
    Ok(UdpOutput {
        name: non_empty(raw.name).unwrap_or(text),
        location,
        mtu,
    })
}

/// Listener names key the spool directory, `/status` and metrics, so they are unique
/// across HTTP and UDP alike.
pub(super) fn check_listener_names(
    http: &[HttpConfig],
    udp: &[UdpConfig],
) -> Result<(), ConfigError> {
    let all = http
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("http[{i}]"), &h.name))
        .chain(
            udp.iter()
                .enumerate()
                .map(|(i, u)| (format!("udp[{i}]"), &u.name)),
        );
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (path, name) in all {
        if let Some(first) = seen.get(name.as_str()) {
            return Err(error(
                format!("{path}.name"),
                format!("duplicate listener name \"{name}\" (also used by {first})"),
            ));
        }
        seen.insert(name, path);
    }
    Ok(())
}

pub(super) fn check_output_names<'a>(
    listener: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        if let Some(first) = seen.get(name) {
            return Err(error(
                format!("{listener}.output[{i}].name"),
                format!("duplicate output name \"{name}\" (also used by output[{first}])"),
            ));
        }
        seen.insert(name, i);
    }
    Ok(())
}

/// Every loop binds each listener with `SO_REUSEPORT`, so two listeners of one protocol
/// on overlapping addresses would not fail to bind: they would silently share (or split)
/// the traffic. HTTP and UDP on the same address are fine (different protocols).
pub(super) fn check_binds(
    kind: &str,
    binds: impl Iterator<Item = SocketAddr>,
) -> Result<(), ConfigError> {
    let binds: Vec<SocketAddr> = binds.collect();
    for (i, b) in binds.iter().enumerate() {
        for (j, a) in binds[..i].iter().enumerate() {
            if !overlaps(a, b) {
                continue;
            }
            let message = if a == b {
                format!("duplicate bind address {b} (also used by {kind}[{j}])")
            } else {
                format!("bind address {b} overlaps {a} of {kind}[{j}]")
            };
            return Err(error(format!("{kind}[{i}].bind-addr"), message));
        }
    }
    Ok(())
}

pub(super) fn overlaps(a: &SocketAddr, b: &SocketAddr) -> bool {
    // Port 0 asks the OS for a fresh port each time: never a clash.
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    // An IPv4 wildcard covers every IPv4 address; an IPv6 wildcard is dual-stack on
    // Linux by default and covers everything.
    let covers = |w: &SocketAddr, x: &SocketAddr| match w.ip() {
        IpAddr::V4(ip) => ip.is_unspecified() && x.is_ipv4(),
        IpAddr::V6(ip) => ip.is_unspecified(),
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}
