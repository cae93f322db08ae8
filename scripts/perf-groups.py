#!/usr/bin/env python3
"""Sums a perf report's self time into groups of work, and by thread.

    perf report -i perf.data --no-children --sort comm,dso,symbol --stdio \\
        | scripts/perf-groups.py [--cpu-per-m 0.27]

Reads the report on stdin. With --cpu-per-m (the process's CPU seconds per million
lines over the same run) each group is also given in nanoseconds of CPU per line.
The groups are coarse on purpose: they say which kind of work a change has to remove.
"""
import argparse
import re
import sys
from collections import defaultdict

# First match wins; (group, dso kind "k"/"." or None for any, symbol pattern).
GROUPS = [
    ("line-protocol check (lineproto::*)", ".", r"lineproto::"),
    ("kernel: copy into sockets (send, _copy_from_iter)", "k", r"^_copy_from_iter|^copy_user|^rep_movs"),
    ("kernel: copy out of sockets (recv, _copy_to_iter)", "k", r"^_copy_to_iter|^skb_copy_datagram"),
    ("kernel: fresh memory (page faults, zeroing pages, munmap)", "k",
     r"page_fault|clear_page|anonymous_page|handle_mm_fault|memcg|unmap_page|zap_|folio|"
     r"alloc_pages|free_pages|freelist|release_pages|lru|pte|vma|mmap|munmap|tlb|__rmqueue"),
    ("kernel: scheduling and wake-ups", "k",
     r"task_switch|spin_unlock_irqrestore|schedule|wake|futex|select_task|enqueue|dequeue|"
     r"update_curr|pick_next|switch_|ttwu|idle"),
    ("kernel: TCP/IP and loopback", "k",
     r"tcp|^ip_|skb|softirq|net_rx|netif|loopback|dev_queue|sock|__inet|nf_|sk_|inet"),
    ("kernel: syscall entry/exit, epoll, other", "k", r"."),
    ("user: memset (buffers zeroed)", ".", r"memset"),
    ("user: memmove/memcpy (copies)", ".", r"memmove|memcpy"),
    ("user: malloc/free", ".", r"malloc|free|realloc|calloc|_int_|arena|tcache"),
    ("user: HTTP framing, batching, backends (rest of influx_relay)", ".", r"influx_relay::"),
    ("user: other", ".", r"."),
]
LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(\S.*?)\s*$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-per-m", type=float, default=None,
                    help="CPU seconds per million lines of the profiled process")
    args = ap.parse_args()
    groups = defaultdict(float)
    threads = defaultdict(float)
    total = 0.0
    for line in sys.stdin:
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        pct, comm, _dso, kind, sym = float(m[1]), m[2], m[3], m[4], m[5]
        total += pct
        # Thread names end in their index (loop-0, out-s1-0): group them by role.
        threads[re.sub(r"-\d+$", "-N", comm) if comm.startswith("loop") else comm] += pct
        for name, want, pattern in GROUPS:
            if (want is None or want == kind) and re.search(pattern, sym):
                groups[name] += pct
                break
    if total == 0:
        sys.exit("no samples in the report")
    per_line = args.cpu_per_m is not None
    print("| group | share of samples |" + (" ns of CPU per line |" if per_line else ""))
    print("|---|---:|" + ("---:|" if per_line else ""))
    for name, pct in sorted(groups.items(), key=lambda kv: -kv[1]):
        share = pct / total
        cell = f" {share * args.cpu_per_m * 1000:.0f} |" if per_line else ""
        print(f"| {name} | {100 * share:.1f}% |{cell}")
    print()
    print("| thread | share of samples |")
    print("|---|---:|")
    for comm, pct in sorted(threads.items(), key=lambda kv: -kv[1]):
        print(f"| {comm} | {100 * pct / total:.1f}% |")


if __name__ == "__main__":
    main()
