#!/usr/bin/env python3
"""Charts (SVG) from the results scripts/bench.sh writes (results.json in its run
directory), so the figures in BENCHMARKS.md and the README are drawn from data, not
by hand.

    scripts/bench-charts.py RESULTS.json [RESULTS.json ...] --out DIR

Several files can be given, e.g. an influx-relay run and a Go relay run
(bench.sh --label go-relay --relay-cmd scripts/bench-go-relay.sh): their results are
drawn side by side, one colour per server, and each chart names the runs it comes
from. Writes lines-per-sec.svg, p99.svg, cpu.svg and udp.svg (each only when the
results hold something to draw). Standard library only.

results.json: {"runs": [{"id", "label", "when", "commit", "note"}],
               "results": [{"run", "workload", "server", "kind": "http" | "udp", ...}]}
HTTP results carry lines_per_request, connections, gzip, lines_per_sec, p99_ms and
cpu_s_per_m_lines; UDP results offered_datagrams_per_sec and
delivered_datagrams_per_sec (one figure per sink).
"""

import argparse
import json
import math
import os
import sys
from html import escape

# Servers in the order they are drawn, and their colours; others follow in grey tones.
KNOWN = [
    ("haproxy", "HAProxy (one backend)", "#8c8c8c"),
    ("influx-relay", "influx-relay (two backends)", "#1f6feb"),
    ("go-relay", "Go influxdb-relay (two backends)", "#d4690b"),
]
OTHER_COLOURS = ["#6f42c1", "#2da44e", "#bf3989", "#57606a"]
FONT = 'font-family="system-ui,Helvetica,Arial,sans-serif"'


def load(paths):
    runs, results = {}, []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for run in data.get("runs", []):
            runs[run["id"]] = run
        results.extend(data.get("results", []))
    return runs, results


def servers_of(results):
    present = {r["server"] for r in results}
    known = [(k, label, c) for k, label, c in KNOWN if k in present]
    rest = sorted(present - {k for k, _, _ in KNOWN})
    others = [(k, k, OTHER_COLOURS[i % len(OTHER_COLOURS)]) for i, k in enumerate(rest)]
    return known + others


def workload_label(r):
    if r["kind"] == "udp":
        return r["workload"]
    # ", " separates the lines of the label under the bars.
    label = "%d lines, × %d connections" % (r["lines_per_request"], r["connections"])
    if r.get("outputs") == 1 and r["server"] != "haproxy":
        label += ", one backend"
    return label + (", gzip" if r.get("gzip") else "")


def nice_ticks(top, count=5):
    """Round tick values from 0 to at least `top`."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def fmt(v):
    if v >= 1e6:
        return "%.3g M" % (v / 1e6)
    if v >= 1e4:
        return "%.3g k" % (v / 1e3)
    if v >= 100:
        return "%.0f" % v
    return "%.3g" % v


def bar_chart(title, unit, categories, series, log=False, footnotes=(), higher_is_better=True):
    """Grouped bars: `series` is [(label, colour, [value or None per category])]."""
    width, left, right, top, bottom = 860, 70, 20, 58, 70
    legend_rows = len(series)
    height = top + 260 + bottom + 16 * (len(footnotes) + legend_rows) - 8
    plot_w, plot_h = width - left - right, 260
    values = [v for _, _, vs in series for v in vs if v is not None and v > 0]
    if not values:
        return None
    if log:
        lo = 10 ** math.floor(math.log10(min(values)))
        hi = 10 ** math.ceil(math.log10(max(values)))
        hi = max(hi, lo * 10)
        ticks = []
        t = lo
        while t <= hi * 1.0001:
            ticks.append(t)
            t *= 10

        def y_of(v):
            return top + plot_h - plot_h * (math.log10(v) - math.log10(lo)) / (
                math.log10(hi) - math.log10(lo))
    else:
        ticks = nice_ticks(max(values))
        hi = ticks[-1]

        def y_of(v):
            return top + plot_h - plot_h * v / hi

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" %s font-size="12">'
        % (width, height, width, height, FONT),
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<text x="%d" y="24" font-size="16" font-weight="600">%s</text>' % (left, escape(title)),
        '<text x="%d" y="42" fill="#57606a">%s%s%s</text>'
        % (left, escape(unit), " (log scale)" if log else "",
           "" if higher_is_better is None else " · %s is better" % ("higher" if higher_is_better else "lower")),
    ]
    for t in ticks:
        y = y_of(t) if (t > 0 or not log) else top + plot_h
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d0d7de"/>' % (left, left + plot_w, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end" fill="#57606a">%s</text>' % (left - 6, y + 4, fmt(t)))
    group_w = plot_w / len(categories)
    bar_w = min(34, (group_w - 16) / max(1, len(series)))
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w
        start = gx + (group_w - bar_w * len(series)) / 2
        for si, (_, colour, vs) in enumerate(series):
            v = vs[ci]
            if v is None or v <= 0:
                continue
            x, y = start + si * bar_w, y_of(v)
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>'
                       % (x + 1, y, bar_w - 2, top + plot_h - y, colour, escape(fmt(v))))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#24292f">%s</text>'
                       % (x + bar_w / 2, y - 3, escape(fmt(v))))
        for li, part in enumerate(cat.split(", ")):
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                       % (gx + group_w / 2, top + plot_h + 18 + 14 * li, escape(part)))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#57606a"/>'
               % (left, left + plot_w, top + plot_h, top + plot_h))
    y = top + plot_h + bottom
    for label, colour, _ in series:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (left, y - 10, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (left + 18, y, escape(label)))
        y += 16
    for note in footnotes:
        out.append('<text x="%d" y="%d" fill="#57606a" font-size="11">%s</text>' % (left, y, escape(note)))
        y += 16
    out.append("</svg>")
    return "\n".join(out) + "\n"


def run_notes(runs, results):
    notes = []
    for run_id in sorted({r["run"] for r in results}):
        run = runs.get(run_id, {})
        servers = sorted({r["server"] for r in results if r["run"] == run_id})
        text = "%s: run %s" % (", ".join(servers), run.get("when", run_id))
        if run.get("commit"):
            text += " at %s" % run["commit"]
        if run.get("note"):
            text += " (%s)" % run["note"]
        notes.append(text)
    return notes


def http_chart(runs, results, field, title, unit, log=False, higher_is_better=True):
    http = [r for r in results if r["kind"] == "http" and r.get(field) is not None]
    if not http:
        return None
    order = []
    for r in http:
        key = (r["gzip"] if "gzip" in r else False, r["connections"], r["lines_per_request"])
        if (key, workload_label(r)) not in order:
            order.append((key, workload_label(r)))
    order.sort()
    categories = [label for _, label in order]
    series = []
    for server, label, colour in servers_of(http):
        vs = []
        for cat in categories:
            found = [r[field] for r in http if r["server"] == server and workload_label(r) == cat]
            vs.append(found[0] if found else None)
        series.append((label, colour, vs))
    return bar_chart(title, unit, categories, series, log=log,
                     footnotes=run_notes(runs, http), higher_is_better=higher_is_better)


def udp_chart(runs, results):
    udp = [r for r in results if r["kind"] == "udp"]
    if not udp:
        return None
    categories, series = [], []
    for r in udp:
        cat = "%s, %s offered" % (r["workload"], fmt(r["offered_datagrams_per_sec"]))
        if cat not in categories:
            categories.append(cat)
    offered = [None] * len(categories)
    for r in udp:
        i = categories.index("%s, %s offered" % (r["workload"], fmt(r["offered_datagrams_per_sec"])))
        offered[i] = r["offered_datagrams_per_sec"]
    series.append(("offered", "#d0d7de", offered))
    for server, label, colour in servers_of(udp):
        vs = [None] * len(categories)
        for r in udp:
            if r["server"] == server:
                i = categories.index("%s, %s offered" % (r["workload"], fmt(r["offered_datagrams_per_sec"])))
                # The worse of the sinks: a datagram counts only if every backend got it.
                vs[i] = min(r["delivered_datagrams_per_sec"])
        series.append(("%s: delivered to each backend (the worse)" % label, colour, vs))
    return bar_chart("UDP: datagrams per second delivered against offered", "datagrams/s",
                     categories, series, footnotes=run_notes(runs, udp))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="results.json written by scripts/bench.sh")
    p.add_argument("--out", required=True, help="directory for the SVG files")
    args = p.parse_args()
    runs, results = load(args.results)
    os.makedirs(args.out, exist_ok=True)
    charts = {
        "lines-per-sec.svg": http_chart(runs, results, "lines_per_sec",
                                        "HTTP: lines per second", "lines/s acknowledged"),
        "p99.svg": http_chart(runs, results, "p99_ms", "HTTP: p99 latency per write",
                              "milliseconds", log=True, higher_is_better=False),
        "cpu.svg": http_chart(runs, results, "cpu_s_per_m_lines",
                              "HTTP: CPU per million lines", "CPU seconds of the server under test",
                              log=True, higher_is_better=False),
        "udp.svg": udp_chart(runs, results),
    }
    for name, svg in charts.items():
        if svg is None:
            continue
        path = os.path.join(args.out, name)
        with open(path, "w") as f:
            f.write(svg)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
