#!/usr/bin/env python3
"""Writes BENCHMARKS.md (to stdout) from the JSON lines of bench/compare.sh.

usage: bench/report.py bench/results > BENCHMARKS.md

Each system's runs are in RESULTS/<system>.jsonl, one object per run (warden-bench
--json). A run repeated because other processes disturbed it appears twice; the report
uses the last one and says so.

Run again by hand (after editing bench/analysis.md, say), give it the settings compare.sh
ran with (HELD_LOCKS=..., WARMUP=...) so the Commands section shows them, and
WARDEN_COMMIT=<the commit measured> if HEAD has moved since.
"""
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

SYSTEMS = ["warden", "etcd", "zookeeper"]
FAILED = []
PEERS = ["etcd", "zookeeper"]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool only leaves a blank in the report
        return ""


def load(results):
    runs, repeated = {}, set()
    for system in SYSTEMS:
        path = os.path.join(results, f"{system}.jsonl")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if r.get("failed"):
                    FAILED.append(f"{r['system']} {r['workload']} C={r['clients']}")
                    continue
                key = (r["system"], r["workload"], r["clients"])
                if key in runs:
                    repeated.add(key)
                runs[key] = r
    return runs, repeated


def fmt_rate(x):
    return f"{x:,.0f}"


def fmt_us(x):
    return f"{x / 1000:.2f}"


def best_peer(runs, workload, clients):
    peers = [runs[(p, workload, clients)] for p in PEERS if (p, workload, clients) in runs]
    return max(peers, key=lambda r: r["ops_per_s"]) if peers else None


def table(runs, repeated, workload, what):
    clients = sorted({c for (s, w, c) in runs if w == workload})
    if not clients:
        return ""
    lines = [
        f"### {workload}\n",
        f"{what}\n",
        "| C | " + " | ".join(f"{s} ops/s | {s} p50 / p99 ms" for s in SYSTEMS) + " | warden ÷ best peer | others' CPU % (w/e/z) |",
        "|---:|" + "---:|---:|" * len(SYSTEMS) + "---:|---:|",
    ]
    for c in clients:
        cells, others = [], []
        for s in SYSTEMS:
            r = runs.get((s, workload, c))
            if r is None:
                cells += ["–", "–"]
                others.append("–")
                continue
            mark = " ⟳" if (s, workload, c) in repeated else ""
            errors = f" ({r['errors']} errors)" if r["errors"] else ""
            cells += [fmt_rate(r["ops_per_s"]) + mark + errors, f"{fmt_us(r['p50_us'])} / {fmt_us(r['p99_us'])}"]
            others.append(f"{r['other_cpu_percent']:.0f}")
        w, peer = runs.get(("warden", workload, c)), best_peer(runs, workload, c)
        ratio = f"{w['ops_per_s'] / peer['ops_per_s']:.2f}× ({peer['system']})" if w and peer and peer["ops_per_s"] > 0 else "–"
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {ratio} | {'/'.join(others)} |")
    extra = []
    for s in SYSTEMS:
        for c in clients:
            r = runs.get((s, workload, c))
            if r and r.get("violations"):
                extra.append(f"- **{s} C={c}: {r['violations']} violations**")
            if r and "acquire_p50_us" in r and workload == "lock-uncontended" and c == 1:
                extra.append(f"- {s} C=1: acquire alone p50 {fmt_us(r['acquire_p50_us'])} ms, p99 {fmt_us(r['acquire_p99_us'])} ms")
    return "\n".join(lines + [""] + extra) + "\n"


def targets(runs):
    out = ["## Targets\n", "| target | measured | met |", "|---|---|---|"]

    def ratio_row(label, workload, c, factor, p99=False):
        w, peer = runs.get(("warden", workload, c)), best_peer(runs, workload, c)
        if not w or not peer:
            out.append(f"| {label} | not measured | – |")
            return
        ratio = w["ops_per_s"] / peer["ops_per_s"] if peer["ops_per_s"] else float("inf")
        ok = ratio >= factor
        text = f"{ratio:.2f}× {peer['system']} ({fmt_rate(w['ops_per_s'])} vs {fmt_rate(peer['ops_per_s'])} ops/s)"
        if p99:
            ok = ok and w["p99_us"] <= peer["p99_us"]
            text += f", p99 {fmt_us(w['p99_us'])} vs {fmt_us(peer['p99_us'])} ms"
        out.append(f"| {label} | {text} | {'yes' if ok else '**no**'} |")

    for c in (64, 256):
        ratio_row(f"lock-uncontended ≥ 2× best peer at C={c}, p99 ≤ peer's", "lock-uncontended", c, 2.0, p99=True)
    for c in sorted({c for (s, w, c) in runs if w == "lock-contended" and s == "warden"}):
        ratio_row(f"lock-contended ≥ 3× best peer's hand-offs at C={c}", "lock-contended", c, 3.0)
    for workload in ("kv-write", "kv-read"):
        for c in (64, 256):
            ratio_row(f"{workload} ≥ 1.5× best peer at C={c}", workload, c, 1.5)
    w1 = runs.get(("warden", "lock-uncontended", 1))
    if w1 and "acquire_p50_us" in w1:
        ok = w1["acquire_p50_us"] <= 500
        out.append(f"| acquire p50 ≤ 0.5 ms at C=1 | {fmt_us(w1['acquire_p50_us'])} ms | {'yes' if ok else '**no**'} |")
    for s in SYSTEMS:
        r = next((v for (sy, w, c), v in runs.items() if sy == s and w == "held-locks"), None)
        if r:
            out.append(
                f"| {s}: {r.get('locks', 0):,} locks held by {r.get('sessions', '?')} sessions | "
                f"{r.get('bytes_per_lock', 0):.0f} bytes per held lock on the busiest member "
                f"({r['busiest_member_rss_mib']:.0f} MiB RSS) | {'yes' if not r['violations'] else '**no**'} |"
            )
    for s in SYSTEMS:
        r = runs.get((s, "sessions", 1))
        if r:
            out.append(
                f"| {s}: {r.get('sessions', '?')} sessions held | {fmt_rate(r['ops_per_s'])} alive at the end, "
                f"busiest member {r['busiest_member_cpu_percent']:.0f} % of a core, {r['busiest_member_rss_mib']:.0f} MiB | "
                f"{'yes' if not r['violations'] else '**no**'} |"
            )
    return "\n".join(out) + "\n"


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    runs, repeated = load(results)
    cpu = sh("lscpu | grep 'Model name' | sed 's/.*: *//'")
    mem = sh("free -g | awk '/Mem:/ {print $2}'")
    print("# Benchmarks: warden, etcd and ZooKeeper\n")
    print("Generated by `bench/compare.sh` (which calls `bench/report.py`); every figure below is")
    print("from one run of it, each system measured in turn on the same machine.\n")
    print("## Machine and versions\n")
    print(f"- {os.cpu_count()} cores ({cpu}), {mem} GiB, {platform.system()} {platform.release()}")
    print(f"- report written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    zk_version = sh("dpkg-query -W -f='${Version}' zookeeper")
    commit = os.environ.get("WARDEN_COMMIT") or sh("git rev-parse --short HEAD")
    print(f"- warden {commit} (release build), {sh('etcd --version | head -1')}, "
          f"ZooKeeper {zk_version}")
    print("- each system: 3 members on loopback with default fsync; the load generator "
          "(`warden-bench`) on the same machine, one connection and one session per client\n")
    print("## Commands\n")
    settings = " ".join(f"{k}={os.environ[k]}" for k in ("CLIENTS", "WARMUP", "DURATION", "WORKLOADS",
                        "SESSIONS", "SYSTEMS", "HELD_LOCKS", "HELD_LOCKS_SYSTEMS") if os.environ.get(k))
    print(f"```sh\n{settings + ' ' if settings else ''}bench/compare.sh   # CLIENTS, WARMUP, DURATION, WORKLOADS, SESSIONS, HELD_LOCKS override the matrix\n"
          "# which runs, per system, workload and client count C:\n"
          f"target/release/warden-bench --system SYSTEM --workload W --clients C "
          f"--warmup {os.environ.get('WARMUP', '3s')} --duration {os.environ.get('DURATION', '15s')} --json\n```\n")
    print("Latency is per operation (a lock cycle is acquire + release; for lock-contended the wait for")
    print("the lock; for watch-fanout the delivery lag). ⟳ marks a run repeated because other")
    print("processes used more than the threshold of CPU during the first; 'others' CPU' is what")
    print("processes other than the members and the load generator used during the window.\n")
    if FAILED:
        print("Runs that failed (see compare.sh's output): " + ", ".join(FAILED) + "\n")
    print(targets(runs))
    print("## Results\n")
    descriptions = {
        "lock-uncontended": "Each client acquires and releases its own lock (etcd: Lock service with a lease; ZooKeeper: ephemeral-sequential recipe).",
        "lock-contended": "All clients on one lock: ops/s are hand-offs; latency is the wait for the lock.",
        "kv-write": "256-byte values, one key per client.",
        "kv-read": "Linearizable reads (ZooKeeper: sync + read).",
        "kv-read-local": "Serializable reads from the member the client is connected to.",
        "watch-fanout": "Watchers on a prefix while the clients write under it: ops/s are events delivered, latency the lag.",
    }
    for workload, what in descriptions.items():
        print(table(runs, repeated, workload, what))
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            print(f.read())


if __name__ == "__main__":
    main()
