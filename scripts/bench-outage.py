#!/usr/bin/env python3
"""Helpers for the outage workloads of scripts/bench.sh.

  bench-outage.py poll   --status URL --pid PID --out FILE --stop FILE --max-secs N
  bench-outage.py report --load JSON --poll FILE [--perf FILE --perf-start MS]
                         --events FILE --metrics FILE --sinks JSON --backend NAME

`poll` samples the relay's /status, its /proc/PID/io and VmRSS every 0.25 s into JSON
lines until the stop file appears or max-secs pass. `report` turns a run's raw files
into one summary object (stdout): per-phase lines/s and p99 from the load generator,
the spool's write rate during the outage, fsyncs per second (from `perf stat` on the
relay's fdatasync/fsync tracepoints, when it ran), the time from the backend's return
until the relay reported it up again, the relay's drop counters, and the loss/duplicate
oracle of both sinks against what the generator got 2xx for. The events file holds
the wall-clock times (ms) of the outage, `down_ms` and `up_ms`, and the relay's VmHWM;
`"healthy": true` marks the baseline run, in which nothing happened at those times.
"""

import argparse
import json
import os
import sys
import time
import urllib.request

POLL_EVERY = 0.25


def now_ms():
    return int(time.time() * 1000)


def proc_io(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                out[k.strip()] = int(v)
    except OSError:
        pass
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def poll(a):
    deadline = time.monotonic() + a.max_secs
    with open(a.out, "w") as out:
        while time.monotonic() < deadline and not os.path.exists(a.stop):
            t = now_ms()
            try:
                with urllib.request.urlopen(a.status, timeout=1) as r:
                    status = json.load(r)
            except Exception as e:  # 503 while a backend is down still has a body
                body = getattr(e, "read", lambda: b"")()
                try:
                    status = json.loads(body)
                except ValueError:
                    status = None
            backends = {}
            for listener in (status or {}).get("http", []):
                for b in listener.get("backends", []):
                    backends[b["name"]] = {
                        k: b.get(k)
                        for k in (
                            "state",
                            "queued_spool_bytes",
                            "queued_ram_bytes",
                            "spooled_points",
                            "delivered_points",
                            "retries",
                            "failed_requests",
                        )
                    }
                    backends[b["name"]]["dropped"] = sum(b.get("dropped_points", {}).values())
            io = proc_io(a.pid)
            out.write(
                json.dumps(
                    {
                        "t": t,
                        "backends": backends,
                        "write_bytes": io.get("write_bytes"),
                        "rss_kb": rss_kb(a.pid),
                    }
                )
                + "\n"
            )
            out.flush()
            time.sleep(POLL_EVERY)


def load_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def perf_fsyncs(path, perf_start_ms):
    """`perf stat -I 1000 -x,` lines: seconds since start, count, unit, event, ..."""
    samples = []
    if not path or not os.path.exists(path):
        return samples
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) < 4 or line.startswith("#"):
                continue
            try:
                secs, count = float(parts[0]), parts[1]
            except ValueError:
                continue
            if not count.isdigit():
                continue
            samples.append((perf_start_ms + secs * 1000, int(count), parts[3]))
    return samples


def report(a):
    load = json.load(open(a.load))
    polls = load_lines(a.poll)
    ev = json.load(open(a.events))
    sinks = json.load(open(a.sinks))
    t0 = load["start_unix_ms"]
    t_down, t_up = ev["down_ms"], ev["up_ms"]
    load_end = t0 + load["duration_secs"] * 1000
    b = a.backend
    phases = {p["name"]: p for p in load.get("phases", [])}

    def at_or_after(t):
        return next((p for p in polls if p["t"] >= t), polls[-1] if polls else None)

    def at_or_before(t):
        before = [p for p in polls if p["t"] <= t]
        return before[-1] if before else (polls[0] if polls else None)

    def bk(p, k):
        return ((p or {}).get("backends", {}).get(b) or {}).get(k) or 0

    # The spool during the outage: what it took, and what reached the disk.
    p_down, p_up = at_or_before(t_down), at_or_before(t_up)
    span = max((p_up["t"] - p_down["t"]) / 1000, 1e-3) if p_down and p_up else 1e-3
    spooled_pts = bk(p_up, "spooled_points") - bk(p_down, "spooled_points")
    spool_growth = bk(p_up, "queued_spool_bytes") - bk(p_down, "queued_spool_bytes")
    disk_bytes = ((p_up or {}).get("write_bytes") or 0) - ((p_down or {}).get("write_bytes") or 0)
    backlog_bytes = bk(p_up, "queued_spool_bytes") + bk(p_up, "queued_ram_bytes")
    peak_backlog = max((bk(p, "queued_spool_bytes") + bk(p, "queued_ram_bytes") for p in polls), default=0)

    # Caught up: the first sample after the return that shows the backend up again.
    caught = next((p for p in polls if p["t"] >= t_up and bk(p, "state") == "up"), None)
    all_up = next(
        (
            p
            for p in polls
            if p["t"] >= t_up and p["backends"] and all(v.get("state") == "up" for v in p["backends"].values())
        ),
        None,
    )
    # When the healthy backend first left `up` (it should never: it is healthy).
    other_left_up = next(
        (
            (p["t"] - t0) / 1000
            for p in polls
            if any(k != b and v.get("state") != "up" for k, v in p["backends"].items())
        ),
        None,
    )
    catchup_secs = (caught["t"] - t_up) / 1000 if caught else None
    outage_secs = (t_up - t_down) / 1000
    delivered_catchup = None
    if caught:
        delivered_catchup = bk(caught, "delivered_points") - bk(at_or_before(t_up), "delivered_points")

    fs = perf_fsyncs(a.perf, a.perf_start or 0)
    fsyncs_outage = sum(n for t, n, _ in fs if t_down + 1000 <= t <= t_up)
    fsync_secs = len({round(t) for t, _, e in fs if t_down + 1000 <= t <= t_up and "fdatasync" in e})
    fsyncs_before = sum(n for t, n, _ in fs if t < t_down)

    # Drop counters from /metrics: every `backend_dropped_points_total` sample.
    drops = {}
    with open(a.metrics) as f:
        for line in f:
            if line.startswith("influx_relay_backend_dropped_points_total{"):
                labels, value = line.rsplit(" ", 1)
                drops[labels[len("influx_relay_backend_dropped_points_total") :]] = int(float(value))
            elif "_dropped_" in line and not line.startswith("#"):
                labels, value = line.rsplit(" ", 1)
                drops[labels.replace("influx_relay_", "")] = int(float(value))

    acked = load["lines_acked"]
    oracle = {}
    for name, st in sinks.items():
        run = st.get("runs", {}).get(load["run_id"], {})
        oracle[name] = {
            "unique": run.get("unique", 0),
            "duplicates": run.get("duplicates", 0),
            "lost": acked - run.get("unique", 0),
        }

    summary = {
        "run_id": load["run_id"],
        "healthy": bool(ev.get("healthy")),
        "phases": phases,
        "outage_secs": outage_secs,
        "lines_acked": acked,
        "errors": load["errors"],
        "spool": {
            "backend": b,
            "points_per_sec": spooled_pts / span,
            "spool_bytes_per_sec": spool_growth / span,
            "disk_write_bytes_per_sec": disk_bytes / span,
            "fsyncs_per_sec": (fsyncs_outage / fsync_secs) if fsync_secs else None,
            "fsyncs_before_outage": fsyncs_before if fs else None,
            "backlog_bytes_at_return": backlog_bytes,
            "peak_backlog_bytes": peak_backlog,
        },
        "catchup": {
            "secs": catchup_secs,
            "during_live_traffic": bool(caught and caught["t"] <= load_end),
            "speed_vs_build": (outage_secs / catchup_secs) if catchup_secs else None,
            "backend_points_per_sec": (delivered_catchup / catchup_secs)
            if catchup_secs and delivered_catchup is not None
            else None,
            "all_backends_up_secs": (all_up["t"] - t_up) / 1000 if all_up else None,
            "other_backend_left_up_at_secs": other_left_up,
        },
        "peak_rss_kb": ev.get("hwm_kb"),
        "max_polled_rss_kb": max((p.get("rss_kb") or 0 for p in polls), default=0),
        "drops": drops,
        "drops_total": sum(drops.values()),
        "oracle": oracle,
    }
    json.dump(summary, sys.stdout, indent=1)
    print()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("poll")
    p.add_argument("--status", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--max-secs", type=float, default=180)
    r = sub.add_parser("report")
    r.add_argument("--load", required=True)
    r.add_argument("--poll", required=True)
    r.add_argument("--perf")
    r.add_argument("--perf-start", type=float)
    r.add_argument("--events", required=True)
    r.add_argument("--metrics", required=True)
    r.add_argument("--sinks", required=True)
    r.add_argument("--backend", required=True)
    a = ap.parse_args()
    poll(a) if a.cmd == "poll" else report(a)


if __name__ == "__main__":
    main()
