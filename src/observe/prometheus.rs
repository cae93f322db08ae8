//! `/metrics`: Prometheus text format 0.0.4, every family named in one table per kind.

use super::*;

/// Prometheus text exposition, one family at a time.
pub(super) struct Exposition {
    pub(super) out: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of one family; its samples must follow before the next.
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(
            self.out,
            "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} {kind}\n"
        );
    }

    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(PREFIX);
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                push_label_value(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newline escaped, as the format requires.
pub(super) fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

pub(super) const COUNTER: &str = "counter";
pub(super) const GAUGE: &str = "gauge";

pub(super) type Family<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Per HTTP listener, label `listener`: (name, type, help, value).
pub(super) const LISTENER_FAMILIES: [Family<HttpTotals>; 6] = [
    (
        "requests_total",
        COUNTER,
        "HTTP requests received with a complete head, every route.",
        |t| t.requests,
    ),
    (
        "points_in_total",
        COUNTER,
        "Points accepted in /write bodies (before fan-out).",
        |t| t.points_in,
    ),
    (
        "bytes_in_total",
        COUNTER,
        "Bytes read from HTTP clients, request heads included.",
        |t| t.bytes_in,
    ),
    (
        "rejected_connections_total",
        COUNTER,
        "Connections closed at once because the listener had max-connections open.",
        |t| t.connections_rejected,
    ),
    (
        "held_changes_total",
        COUNTER,
        "Writes and statements held (client not read) while a backend's queue caught up.",
        |t| t.changes_held,
    ),
    (
        "held_changes_too_long_total",
        COUNTER,
        "Held writes and statements answered 503 because the backend did not catch up in time.",
        |t| t.changes_held_too_long,
    ),
];

/// Per HTTP backend, labels `listener` and `backend`.
pub(super) const BACKEND_FAMILIES: [Family<BackendStats>; 15] = [
    (
        "backend_up",
        GAUGE,
        "1 when the last write or /ping probe to the backend succeeded.",
        |s| u64::from(s.down.get() == 0),
    ),
    (
        "backend_delivered_requests_total",
        COUNTER,
        "Writes the backend accepted (2xx), replays included.",
        |s| s.delivered_requests.get(),
    ),
    (
        "backend_points_out_total",
        COUNTER,
        "Points the backend accepted (2xx).",
        |s| s.delivered_points.get(),
    ),
    (
        "backend_bytes_out_total",
        COUNTER,
        "Body bytes the backend accepted (2xx), before any gzip.",
        |s| s.delivered_bytes.get(),
    ),
    (
        "backend_rejected_requests_total",
        COUNTER,
        "Writes the backend refused (4xx).",
        |s| s.rejected_requests.get(),
    ),
    (
        "backend_failed_requests_total",
        COUNTER,
        "Write attempts that failed (5xx, timeout, connection error, full channel).",
        |s| s.failed_requests.get(),
    ),
    (
        "backend_retries_total",
        COUNTER,
        "Attempts to deliver queued (RAM or spooled) writes after a failure.",
        |s| s.retries.get(),
    ),
    (
        "backend_spooled_points_total",
        COUNTER,
        "Points written to the backend's disk spool.",
        |s| s.spooled_points.get(),
    ),
    (
        "backend_spool_appended_bytes_total",
        COUNTER,
        "Bytes appended to the backend's disk spool, record headers included.",
        |s| s.spool_appended_bytes.get(),
    ),
    (
        "backend_spool_syncs_total",
        COUNTER,
        "fdatasync calls that made spool appends durable (one per group commit).",
        |s| s.spool_syncs.get(),
    ),
    (
        "backend_replayed_points_total",
        COUNTER,
        "Points delivered from the backend's queue (RAM or spool), i.e. caught up.",
        |s| s.replayed_points.get(),
    ),
    (
        "backend_queued_requests",
        GAUGE,
        "Writes waiting for the backend, in RAM or in the spool.",
        |s| s.queued_requests.get(),
    ),
    (
        "backend_queue_ram_bytes",
        GAUGE,
        "Bytes of writes waiting for the backend in the RAM retry buffer.",
        |s| s.ram_queue_bytes.get(),
    ),
    (
        "backend_queue_spool_bytes",
        GAUGE,
        "Bytes of writes waiting for the backend in its disk spool.",
        |s| s.spool_bytes.get(),
    ),
    (
        "backend_queued_since_seconds",
        GAUGE,
        "Unix time the oldest queued write was queued; 0 when nothing is queued.",
        |s| s.queued_since_ms.get() / 1000,
    ),
];

/// Per UDP listener, label `listener`.
pub(super) const UDP_FAMILIES: [Family<UdpTotals>; 5] = [
    (
        "udp_datagrams_in_total",
        COUNTER,
        "Datagrams received, truncated ones included.",
        |t| t.datagrams_in,
    ),
    (
        "udp_bytes_in_total",
        COUNTER,
        "Bytes of datagrams received.",
        |t| t.bytes_in,
    ),
    (
        "udp_lines_in_total",
        COUNTER,
        "Point lines accepted and handed to the outputs.",
        |t| t.lines_in,
    ),
    (
        "udp_bad_lines_total",
        COUNTER,
        "Lines dropped because they are not valid line protocol.",
        |t| t.bad_lines,
    ),
    (
        "udp_receive_errors_total",
        COUNTER,
        "Failed socket reads.",
        |t| t.recv_errors,
    ),
];

/// Per UDP output, labels `listener` and `backend`.
pub(super) const UDP_OUTPUT_FAMILIES: [Family<UdpOutputStats>; 4] = [
    (
        "udp_output_datagrams_total",
        COUNTER,
        "Datagrams sent to the output.",
        |s| s.datagrams_out.get(),
    ),
    (
        "udp_output_lines_total",
        COUNTER,
        "Lines sent to the output.",
        |s| s.lines_out.get(),
    ),
    (
        "udp_output_bytes_total",
        COUNTER,
        "Bytes sent to the output.",
        |s| s.bytes_out.get(),
    ),
    (
        "udp_output_send_errors_total",
        COUNTER,
        "Datagrams the kernel refused to send.",
        |s| s.send_errors.get(),
    ),
];

/// `le` label values of the latency buckets, in seconds.
pub(super) fn latency_bounds() -> [String; LATENCY_BOUNDS_US.len()] {
    LATENCY_BOUNDS_US.map(|us| (us as f64 / 1e6).to_string())
}

/// `GET /metrics`: Prometheus text format 0.0.4.
pub fn metrics(view: &View) -> Page {
    let mut m = Exposition {
        out: String::with_capacity(16 * 1024),
    };
    m.family("build_info", GAUGE, "Always 1; the version is a label.");
    m.sample("build_info", &[("version", view.version)], 1);
    m.family("uptime_seconds", GAUGE, "Seconds since the relay started.");
    m.sample("uptime_seconds", &[], view.uptime.as_secs_f64());
    m.family(
        "tls_handshake_failures_total",
        COUNTER,
        "TLS handshakes that failed on HTTPS listeners.",
    );
    m.sample(
        "tls_handshake_failures_total",
        &[],
        view.tls_handshake_failures,
    );
    m.family(
        "healthy",
        GAUGE,
        "1 when /health passes: every HTTP listener has a backend up with an empty queue.",
    );
    m.sample("healthy", &[], u64::from(view.healthy()));

    let http: Vec<HttpTotals> = view.http.iter().map(|l| HttpTotals::of(l.loops)).collect();
    for (name, kind, help, get) in LISTENER_FAMILIES {
        m.family(name, kind, help);
        for (l, t) in view.http.iter().zip(&http) {
            m.sample(name, &[("listener", l.name)], get(t));
        }
    }
    m.family(
        "responses_total",
        COUNTER,
        "HTTP answers sent, by status class.",
    );
    for (l, t) in view.http.iter().zip(&http) {
        for (code, n) in [
            ("2xx", t.answered_2xx),
            ("4xx", t.answered_4xx),
            ("5xx", t.answered_5xx),
        ] {
            m.sample(
                "responses_total",
                &[("listener", l.name), ("code", code)],
                n,
            );
        }
    }
    m.family(
        "open_connections",
        GAUGE,
        "HTTP client connections open now.",
    );
    for l in &view.http {
        m.sample(
            "open_connections",
            &[("listener", l.name)],
            l.open_connections,
        );
    }
    m.family(
        "request_duration_seconds",
        "histogram",
        "Time from a /write request's complete head to its answer being queued.",
    );
    let bounds = latency_bounds();
    for (l, t) in view.http.iter().zip(&http) {
        let mut cumulative = 0;
        for (bound, n) in bounds.iter().zip(t.latency) {
            cumulative += n;
            m.sample(
                "request_duration_seconds_bucket",
                &[("listener", l.name), ("le", bound)],
                cumulative,
            );
        }
        let count = t.latency_count();
        m.sample(
            "request_duration_seconds_bucket",
            &[("listener", l.name), ("le", "+Inf")],
            count,
        );
        m.sample(
            "request_duration_seconds_sum",
            &[("listener", l.name)],
            t.latency_sum_us as f64 / 1e6,
        );
        m.sample(
            "request_duration_seconds_count",
            &[("listener", l.name)],
            count,
        );
    }

    for (name, kind, help, get) in BACKEND_FAMILIES {
        m.family(name, kind, help);
        for l in &view.http {
            for b in &l.backends {
                m.sample(
                    name,
                    &[("listener", l.name), ("backend", b.name)],
                    get(b.stats),
                );
            }
        }
    }
    m.family(
        "backend_dropped_points_total",
        COUNTER,
        "Points that will never reach the backend, by reason.",
    );
    for l in &view.http {
        for b in &l.backends {
            for (reason, get) in BACKEND_DROPS {
                m.sample(
                    "backend_dropped_points_total",
                    &[
                        ("listener", l.name),
                        ("backend", b.name),
                        ("reason", reason),
                    ],
                    get(b.stats),
                );
            }
        }
    }
    m.family(
        "backend_dropped_ranges",
        GAUGE,
        "Time ranges (per database and retention policy) of writes given up for the \
         backend: what it lacks; /status lists them.",
    );
    for l in &view.http {
        for b in &l.backends {
            m.sample(
                "backend_dropped_ranges",
                &[("listener", l.name), ("backend", b.name)],
                b.dropped.len(),
            );
        }
    }

    rebuild_families(&mut m, view);

    let udp: Vec<UdpTotals> = view.udp.iter().map(|l| UdpTotals::of(l.loops)).collect();
    for (name, kind, help, get) in UDP_FAMILIES {
        m.family(name, kind, help);
        for (l, t) in view.udp.iter().zip(&udp) {
            m.sample(name, &[("listener", l.name)], get(t));
        }
    }
    m.family(
        "udp_dropped_datagrams_total",
        COUNTER,
        "Datagrams lost on the way in: truncated (over 64 KiB) or dropped by the kernel \
         (receive buffer full).",
    );
    for (l, t) in view.udp.iter().zip(&udp) {
        for (reason, n) in [("truncated", t.truncated), ("kernel", t.kernel_drops)] {
            m.sample(
                "udp_dropped_datagrams_total",
                &[("listener", l.name), ("reason", reason)],
                n,
            );
        }
    }
    for (name, kind, help, get) in UDP_OUTPUT_FAMILIES {
        m.family(name, kind, help);
        for l in &view.udp {
            for o in &l.outputs {
                m.sample(
                    name,
                    &[("listener", l.name), ("backend", o.name)],
                    get(o.stats),
                );
            }
        }
    }
    m.family(
        "udp_output_dropped_lines_total",
        COUNTER,
        "Lines that never left for the output, by reason.",
    );
    for l in &view.udp {
        for o in &l.outputs {
            for (reason, get) in UDP_OUTPUT_DROPS {
                m.sample(
                    "udp_output_dropped_lines_total",
                    &[
                        ("listener", l.name),
                        ("backend", o.name),
                        ("reason", reason),
                    ],
                    get(o.stats),
                );
            }
        }
    }
    Page {
        status: 200,
        content_type: PROMETHEUS_TEXT,
        body: m.out.into_bytes(),
    }
}

/// A rebuild's progress, per backend: 0 for a backend never rebuilt.
type RebuildFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::rebuild::Counters) -> u64,
);

const REBUILD_FAMILIES: [RebuildFamily; 4] = [
    (
        "rebuild_points_copied_total",
        COUNTER,
        "Points the latest rebuild of the backend copied to it.",
        |c| c.points_copied.load(Ordering::Relaxed),
    ),
    (
        "rebuild_bytes_copied_total",
        COUNTER,
        "Line protocol bytes the latest rebuild of the backend copied to it.",
        |c| c.bytes_copied.load(Ordering::Relaxed),
    ),
    (
        "rebuild_windows_done",
        GAUGE,
        "Time windows the latest rebuild of the backend has compared or copied.",
        |c| c.windows_done.load(Ordering::Relaxed),
    ),
    (
        "rebuild_windows_planned",
        GAUGE,
        "Time windows the latest rebuild of the backend has to look at.",
        |c| c.windows_total.load(Ordering::Relaxed),
    ),
];

fn rebuild_families(m: &mut Exposition, view: &View) {
    m.family(
        "backend_rebuilding",
        GAUGE,
        "1 while the backend is being rebuilt (or its rebuild failed): it serves no read.",
    );
    for l in &view.http {
        for b in &l.backends {
            m.sample(
                "backend_rebuilding",
                &[("listener", l.name), ("backend", b.name)],
                u64::from(b.rebuilding),
            );
        }
    }
    for (name, kind, help, get) in REBUILD_FAMILIES {
        m.family(name, kind, help);
        for l in &view.http {
            for b in &l.backends {
                let value = b.rebuild.as_ref().map_or(0, |j| get(&j.counters));
                m.sample(name, &[("listener", l.name), ("backend", b.name)], value);
            }
        }
    }
}
