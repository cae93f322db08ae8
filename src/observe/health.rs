//! `/health`: pass or fail, with each backend's state, for load balancers.

use super::*;

/// `GET /health`: 200 `{"status":"pass",...}` or 503 `{"status":"fail",...}`, with
/// each listener's and backend's state either way so a failing check explains itself.
/// It ends with the fields of InfluxDB 2's own `/health` (`name`, `message`, `checks`,
/// `version`, `commit`), so that the 2.x and 3.x client libraries' health checks,
/// which require them, read it as a server's.
pub fn health(view: &View) -> Page {
    let ok = view.healthy();
    let backends: usize = view.http.iter().map(|l| l.backends.len()).sum();
    let mut out = String::with_capacity(96 + 64 * view.http.len() + 112 * backends);
    let mut top = Obj::open(&mut out);
    top.str("status", pass_fail(ok));
    if view.shutting_down {
        top.str("reason", "shutting down");
    } else if !ok {
        top.str(
            "reason",
            "a listener has no backend that is up with an empty queue",
        );
    }
    json_array(top.key("listeners"), &view.http, |out, l| {
        let mut o = Obj::open(out);
        o.str("name", l.name);
        o.str("status", pass_fail(l.healthy()));
        json_array(o.key("backends"), &l.backends, |out, b| {
            let mut o = Obj::open(out);
            o.str("name", b.name);
            o.str("state", b.state().as_str());
            o.num("queued_requests", b.stats.queued_requests.get());
            o.num(
                "queued_bytes",
                b.stats.ram_queue_bytes.get() + b.stats.spool_bytes.get(),
            );
            o.secs(
                "oldest_queued_seconds",
                oldest_queued_seconds(b.stats, view.now_ms),
            );
            o.close();
        });
        o.close();
    });
    top.str("name", "influxdb");
    top.str(
        "message",
        if view.shutting_down {
            "shutting down"
        } else if ok {
            "ready for queries and writes"
        } else {
            "a listener has no backend that is up with an empty queue"
        },
    );
    top.key("checks").push_str("[]");
    top.str("version", crate::http::response::INFLUXDB_VERSION);
    top.str(
        "commit",
        concat!("influx-relay ", env!("CARGO_PKG_VERSION")),
    );
    top.close();
    json_page(ok, out)
}
