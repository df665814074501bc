#!/usr/bin/env python3
"""Writes BENCHMARKS.md (to stdout) from the JSON lines of bench/compare.sh, and draws a
plot per workload.

usage: bench/report.py [RESULTS] [--baseline DIR] [--plots DIR] [--tolerance PCT] > BENCHMARKS.md

Each system's runs are in RESULTS/<system>.jsonl (default bench/results), one object per
run (warden-bench --json). A run repeated because other processes disturbed it appears
twice; the report uses the last one and says so.

The targets are issue 17's, each judged against ZooKeeper's figures in the same results.
"No regression in the sessions and watch-fanout rows" needs an earlier run's results:
--baseline DIR (or BASELINE_RESULTS=DIR), a copy of bench/results from before the change.

Plots (throughput and p99 against clients, per workload) go to --plots DIR (default: plots/
next to RESULTS, i.e. bench/plots) and the report links them relative to the repository
root, where BENCHMARKS.md is. They need matplotlib (compare.sh installs a pinned one in a
virtualenv); without it the report is written without plots and a note goes to stderr.

Run again by hand (after editing bench/analysis.md, say), give it the settings compare.sh
ran with (HELD_LOCKS=..., WARMUP=...) so the Commands section shows them,
WARDEN_COMMIT=<the commit measured> if HEAD has moved since, REPORT_DATE="YYYY-MM-DD HH:MM
UTC" to keep the run's date, and ETCD_VERSION / ZOOKEEPER_VERSION if the peers are not
installed where the report is written.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

SYSTEMS = ["warden", "etcd", "zookeeper"]
PEERS = ["etcd", "zookeeper"]
REFERENCE = "zookeeper"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Workload:
    """What a workload's rows mean: its description, what ops/s counts and what p99 times."""

    description: str
    unit: str
    latency: str


WORKLOADS = {
    "lock-uncontended": Workload(
        "Each client acquires and releases its own lock (etcd: Lock service with a lease; "
        "ZooKeeper: ephemeral-sequential recipe).",
        "lock cycles/s", "p99 of a lock cycle (ms)"),
    "lock-contended": Workload(
        "All clients on one lock: ops/s are hand-offs; latency is the wait for the lock.",
        "hand-offs/s", "p99 wait for the lock (ms)"),
    "kv-write": Workload("256-byte values, one key per client.", "writes/s", "p99 of a write (ms)"),
    "kv-read": Workload("Linearizable reads (ZooKeeper: sync + read).", "reads/s", "p99 of a read (ms)"),
    "kv-read-local": Workload(
        "Serializable reads from the member the client is connected to.", "reads/s", "p99 of a read (ms)"),
    "watch-fanout": Workload(
        "Watchers on a prefix while the clients write under it: ops/s are events delivered, "
        "latency the lag.",
        "events delivered/s", "p99 delivery lag (ms)"),
}

# Replicated writes per operation, for CPU per committed write: a lock cycle is an acquire
# and a release (ZooKeeper's recipe: a create and a delete, plus a read of the children).
WRITES_PER_OP = {"kv-write": 1, "lock-uncontended": 2}
# The CPU figures of a run (% of one core over the window), in the order the cells show them.
CPU_FIGURES = ("busiest_member_cpu_percent", "members_cpu_percent", "driver_cpu_percent")

# Issue 17's targets.
KV_WRITE_FACTOR = 1.5
LOCK_UNCONTENDED_FACTOR = 2.0
LOCK_CONTENDED_FACTOR = 1.5
TARGET_CLIENTS = (64, 256)
ACQUIRE_P50_MAX_US = 600
HELD_LOCKS, HELD_SESSIONS, BYTES_PER_LOCK_MAX = 1_000_000, 10_000, 1024

SETTINGS = ("CLIENTS", "WARMUP", "DURATION", "WORKLOADS", "SESSIONS", "SYSTEMS", "HELD_LOCKS",
            "HELD_LOCKS_SYSTEMS")
STYLE = {"warden": ("tab:blue", "o"), "etcd": ("tab:green", "s"), "zookeeper": ("tab:orange", "^")}


@dataclass
class Results:
    """The runs of one compare.sh run, by (system, workload, clients)."""

    runs: dict = field(default_factory=dict)
    repeated: set = field(default_factory=set)
    failed: list = field(default_factory=list)

    def get(self, system, workload, clients):
        return self.runs.get((system, workload, clients))

    def clients(self, workload, systems=SYSTEMS):
        return sorted({c for (s, w, c) in self.runs if w == workload and s in systems})

    def first(self, system, workload):
        """The run of a workload measured at one client count only (sessions, held-locks)."""
        return next((r for (s, w, _), r in sorted(self.runs.items()) if s == system and w == workload), None)


def load(directory):
    results = Results()
    for system in SYSTEMS:
        path = os.path.join(directory, f"{system}.jsonl")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"report.py: {path} line {number} is not a JSON object ({e}); "
                             "remove it or run bench/compare.sh again")
                if r.get("failed"):
                    results.failed.append(f"{r['system']} {r['workload']} C={r['clients']}")
                    continue
                key = (r["system"], r["workload"], r["clients"])
                if key in results.runs:
                    results.repeated.add(key)
                results.runs[key] = r
    return results


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool only leaves a blank in the report
        return ""


def fmt_rate(x):
    return f"{x:,.0f}"


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def yes_no(ok):
    return "yes" if ok else "**no**"


def ratio(a, b):
    """a's throughput over b's, or None when either was not measured."""
    if not a or not b or b["ops_per_s"] <= 0:
        return None
    return a["ops_per_s"] / b["ops_per_s"]


def best_peer(results, workload, clients):
    peers = [r for r in (results.get(p, workload, clients) for p in PEERS) if r]
    return max(peers, key=lambda r: r["ops_per_s"]) if peers else None


# --- header -------------------------------------------------------------------------------


def header():
    cpu = sh("lscpu | grep 'Model name' | sed 's/.*: *//'")
    mem = sh("free -g | awk '/Mem:/ {print $2}'")
    date = os.environ.get("REPORT_DATE") or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = os.environ.get("WARDEN_COMMIT") or sh("git rev-parse --short HEAD")
    etcd = os.environ.get("ETCD_VERSION") or sh("etcd --version | head -1").removeprefix("etcd Version: ")
    zookeeper = os.environ.get("ZOOKEEPER_VERSION") or sh("dpkg-query -W -f='${Version}' zookeeper")
    settings = " ".join(f"{k}={os.environ[k]}" for k in SETTINGS if os.environ.get(k))
    warmup, duration = os.environ.get("WARMUP", "3s"), os.environ.get("DURATION", "15s")
    return f"""# Benchmarks: warden, etcd and ZooKeeper

Generated by `bench/compare.sh` (which calls `bench/report.py`); every figure below is
from one run of it, each system measured in turn on the same machine.

## Machine and versions

- {os.cpu_count()} cores ({cpu}), {mem} GiB, {platform.system()} {platform.release()}
- report written {date}
- warden {commit} (release build), etcd {etcd or '?'}, ZooKeeper {zookeeper or '?'}
- each system: 3 members on loopback with default fsync; the load generator (`warden-bench`) on the same machine, one connection and one session per client

## Commands

```sh
{settings + ' ' if settings else ''}bench/compare.sh   # CLIENTS, WARMUP, DURATION, WORKLOADS, SESSIONS, HELD_LOCKS override the matrix
# which runs, per system, workload and client count C:
target/release/warden-bench --system SYSTEM --workload W --clients C --warmup {warmup} --duration {duration} --json
# and then writes this file and bench/plots/*.png from bench/results/*.jsonl:
bench/report.py bench/results > BENCHMARKS.md
```

Latency is per operation (a lock cycle is acquire + release; for lock-contended the wait for
the lock; for watch-fanout the delivery lag). ⟳ marks a run repeated because other
processes used more than the threshold of CPU during the first; 'others' CPU' is what
processes other than the members and the load generator used during the window.
"""


# --- targets ------------------------------------------------------------------------------


def throughput_target(results, workload, clients, factor):
    """A row for 'warden ≥ factor × ZooKeeper' on one workload at one client count."""
    label = f"{workload} ≥ {factor:g}× ZooKeeper's {WORKLOADS[workload].unit} at C={clients}"
    w, z = results.get("warden", workload, clients), results.get(REFERENCE, workload, clients)
    r = ratio(w, z)
    if r is None:
        missing = " and ".join(s for s, run in (("warden", w), (REFERENCE, z)) if not run)
        return f"| {label} | not measured ({missing or 'no ZooKeeper throughput'}) | – |"
    return (f"| {label} | {r:.2f}× ({fmt_rate(w['ops_per_s'])} vs {fmt_rate(z['ops_per_s'])} "
            f"{WORKLOADS[workload].unit}) | {yes_no(r >= factor)} |")


def acquire_target(results):
    label = f"acquire p50 ≤ {ACQUIRE_P50_MAX_US / 1000:g} ms at C=1 (lock-uncontended)"
    w = results.get("warden", "lock-uncontended", 1)
    if not w or "acquire_p50_us" not in w:
        return f"| {label} | not measured | – |"
    z = results.get(REFERENCE, "lock-uncontended", 1)
    theirs = f" (ZooKeeper {fmt_ms(z['acquire_p50_us'])} ms)" if z and "acquire_p50_us" in z else ""
    ok = w["acquire_p50_us"] <= ACQUIRE_P50_MAX_US
    return f"| {label} | {fmt_ms(w['acquire_p50_us'])} ms{theirs} | {yes_no(ok)} |"


def held_locks_target(results):
    label = (f"{HELD_LOCKS:,} held locks for {HELD_SESSIONS:,} sessions at ≤ {BYTES_PER_LOCK_MAX:,} B "
             "per lock on the busiest member")
    w = results.first("warden", "held-locks")
    if not w:
        return f"| {label} | not measured (HELD_LOCKS unset) | – |"
    locks, sessions, per_lock = w.get("locks", 0), w.get("sessions", 0), w.get("bytes_per_lock", 0)
    ok = (locks >= HELD_LOCKS and sessions >= HELD_SESSIONS and per_lock <= BYTES_PER_LOCK_MAX
          and not w["violations"] and not w["errors"])
    peers = [(p, results.first(p, "held-locks")) for p in PEERS]
    measured = [f"{p} {r.get('bytes_per_lock', 0):,.0f} B" for p, r in peers if r]
    missing = [p for p, r in peers if not r]
    peers = measured + ([f"{' and '.join(missing)} not measured"] if missing else [])
    return (f"| {label} | {locks:,} locks for {sessions:,} sessions: {per_lock:,.0f} B per lock "
            f"({w['busiest_member_rss_mib']:,.0f} MiB), {w['errors']} errors, {w['violations']} "
            f"violations ({', '.join(peers)}) | {yes_no(ok)} |")


def within(now, before, tolerance, higher_is_better):
    """Whether `now` is no worse than `before` by more than `tolerance` (a fraction)."""
    if higher_is_better:
        return now >= before * (1 - tolerance)
    return now <= before * (1 + tolerance)


def sessions_now(r):
    return (f"{fmt_rate(r['ops_per_s'])} alive, busiest member {r['busiest_member_cpu_percent']:.1f} % "
            f"of a core, {r['busiest_member_rss_mib']:,.0f} MiB")


def not_measured(label, now):
    return f"| {label} | not measured in {'the baseline' if now else 'this run'} | – |"


def sessions_regression(now, before, tolerance):
    label = "no regression: sessions"
    if not (now and before):
        return not_measured(label, now)
    ok = (now["ops_per_s"] >= before["ops_per_s"] and not now["violations"]
          and within(now["busiest_member_cpu_percent"], before["busiest_member_cpu_percent"], tolerance, False)
          and within(now["busiest_member_rss_mib"], before["busiest_member_rss_mib"], tolerance, False))
    return f"| {label} | {sessions_now(now)}; baseline {sessions_now(before)} | {yes_no(ok)} |"


def watch_regression(clients, now, before, tolerance):
    label = f"no regression: watch-fanout C={clients}"
    if not (now and before):
        return not_measured(label, now)
    ok = (within(now["ops_per_s"], before["ops_per_s"], tolerance, True)
          and within(now["p99_us"], before["p99_us"], tolerance, False) and not now["violations"])
    return (f"| {label} | {fmt_rate(now['ops_per_s'])} events/s, p99 {fmt_ms(now['p99_us'])} ms; baseline "
            f"{fmt_rate(before['ops_per_s'])}, {fmt_ms(before['p99_us'])} ms | {yes_no(ok)} |")


def regression_targets(results, baseline, tolerance):
    """Rows for 'no regression in the sessions and watch-fanout rows': warden's figures
    against an earlier run's, each allowed to be worse by at most `tolerance` (a fraction)."""
    sessions = results.first("warden", "sessions")
    watch = results.clients("watch-fanout", ["warden"])
    if baseline is None:
        events = " / ".join(fmt_rate(results.get("warden", "watch-fanout", c)["ops_per_s"]) for c in watch)
        now = "; ".join(([f"sessions: {sessions_now(sessions)}"] if sessions else []) + (
            [f"watch-fanout: {events} events/s at C={'/'.join(map(str, watch))}"] if watch else []))
        return ["| no regression in the sessions and watch-fanout rows | no baseline given "
                f"(`--baseline DIR` or BASELINE_RESULTS); warden now: {now or 'not measured'} | – |"]
    rows = [sessions_regression(sessions, baseline.first("warden", "sessions"), tolerance)]
    for c in sorted(set(watch) | set(baseline.clients("watch-fanout", ["warden"]))):
        rows.append(watch_regression(c, results.get("warden", "watch-fanout", c),
                                     baseline.get("warden", "watch-fanout", c), tolerance))
    return rows


def targets(results, baseline, baseline_dir, tolerance):
    rows = [throughput_target(results, "kv-write", c, KV_WRITE_FACTOR) for c in TARGET_CLIENTS]
    rows += [throughput_target(results, "lock-uncontended", c, LOCK_UNCONTENDED_FACTOR) for c in TARGET_CLIENTS]
    rows += [throughput_target(results, "lock-contended", c, LOCK_CONTENDED_FACTOR)
             for c in results.clients("lock-contended", ["warden", REFERENCE])]
    rows += [acquire_target(results), held_locks_target(results)]
    rows += regression_targets(results, baseline, tolerance)
    note = "Issue 17's targets; each ratio is warden's figure over ZooKeeper's in this same run."
    if baseline:
        note += (f" The regression rows compare warden with the baseline `{baseline_dir}`: each figure "
                 f"may be at most {tolerance:.0%} worse, the sessions alive not at all.")
    return "\n".join(["## Targets\n", note, "", "| target | measured | met |", "|---|---|---|", *rows]) + "\n"


# --- CPU per committed write --------------------------------------------------------------


def cpu_ms_per_write(run, workload, key):
    """ms of CPU per replicated write: the CPU % of one core over the measured window is CPU
    seconds per second ÷ 100, divided by operations per second, per write of an operation."""
    if not run or run["ops_per_s"] <= 0 or key not in run:
        return None
    return run[key] / 100 / run["ops_per_s"] * 1000 / WRITES_PER_OP[workload]


def cpu_per_write(results):
    lines = [
        "## CPU per committed write\n",
        "ms of CPU per write = CPU % of one core over the measured window ÷ 100 ÷ operations per",
        "second × 1000 ÷ writes per operation (1 for kv-write; 2 for lock-uncontended, whose cycle",
        "is an acquire and a release; ZooKeeper's recipe also reads the lock's children). CPU is",
        "user + system time from /proc over the same window as the throughput. Each cell is",
        "*busiest* / *members* / *client*: the member that used the most (the leader under load),",
        "the three members together, and the load generator (`warden-bench` with that system's",
        "client library), which shares the machine's two cores with the members.\n",
        "| workload | C | " + " | ".join(f"{s} ms" for s in SYSTEMS)
        + " | warden ÷ zookeeper (busiest) |",
        "|---|---:|" + "---:|" * len(SYSTEMS) + "---:|",
    ]
    rows = [(w, c) for w in WRITES_PER_OP for c in results.clients(w)]
    if not rows:
        return ""
    for workload, c in rows:
        cells, busiest = [], {}
        for s in SYSTEMS:
            run = results.get(s, workload, c)
            figures = [cpu_ms_per_write(run, workload, k) for k in CPU_FIGURES]
            busiest[s] = figures[0]
            cells.append(" / ".join("–" if f is None else f"{f:.3f}" for f in figures) if run else "–")
        w, z = busiest["warden"], busiest[REFERENCE]
        r = f"{w / z:.2f}×" if w is not None and z else "–"
        lines.append(f"| {workload} | {c} | " + " | ".join(cells) + f" | {r} |")
    return "\n".join(lines) + "\n"


# --- per-workload tables ------------------------------------------------------------------


def ratio_cell(run, other):
    r = ratio(run, other)
    return "–" if r is None else f"{r:.2f}×"


def workload_table(results, workload, plot):
    clients = results.clients(workload)
    if not clients:
        return ""
    lines = [
        f"### {workload}\n",
        f"{WORKLOADS[workload].description}\n",
        "| C | " + " | ".join(f"{s} ops/s | {s} p50 / p99 ms" for s in SYSTEMS)
        + " | warden ÷ best peer | warden ÷ zookeeper | others' CPU % (w/e/z) |",
        "|---:|" + "---:|---:|" * len(SYSTEMS) + "---:|---:|---:|",
    ]
    for c in clients:
        cells, others = [], []
        for s in SYSTEMS:
            r = results.get(s, workload, c)
            if r is None:
                cells += ["–", "–"]
                others.append("–")
                continue
            mark = " ⟳" if (s, workload, c) in results.repeated else ""
            errors = f" ({r['errors']} errors)" if r["errors"] else ""
            cells += [fmt_rate(r["ops_per_s"]) + mark + errors, f"{fmt_ms(r['p50_us'])} / {fmt_ms(r['p99_us'])}"]
            others.append(f"{r['other_cpu_percent']:.0f}")
        w, peer = results.get("warden", workload, c), best_peer(results, workload, c)
        best = f"{ratio_cell(w, peer)} ({peer['system']})" if ratio(w, peer) is not None else "–"
        z = ratio_cell(w, results.get(REFERENCE, workload, c))
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {best} | {z} | {'/'.join(others)} |")
    notes = []
    for s in SYSTEMS:
        for c in clients:
            r = results.get(s, workload, c)
            if r and r.get("violations"):
                notes.append(f"- **{s} C={c}: {r['violations']} violations**")
            if r and "acquire_p50_us" in r and workload == "lock-uncontended" and c == 1:
                notes.append(f"- {s} C=1: acquire alone p50 {fmt_ms(r['acquire_p50_us'])} ms, "
                             f"p99 {fmt_ms(r['acquire_p99_us'])} ms")
    blocks = ["\n".join(lines), "\n".join(notes), f"![{workload}]({plot})" if plot else ""]
    return "\n\n".join(b for b in blocks if b) + "\n"


# --- plots --------------------------------------------------------------------------------


def pyplot():
    """matplotlib's pyplot on a file-only backend, or None (with a note) if it is missing."""
    try:
        import matplotlib
    except ImportError:
        print("report.py: matplotlib is not installed, so the report has no plots; "
              "bench/compare.sh installs it in a virtualenv (see PLOT_VENV there)", file=sys.stderr)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def draw(plt, results, workload, path):
    """Throughput and p99 against clients, the three systems on one chart each."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

    spec = WORKLOADS[workload]
    clients = results.clients(workload)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for s in SYSTEMS:
        runs = [(c, results.get(s, workload, c)) for c in clients if results.get(s, workload, c)]
        if not runs:
            continue
        color, marker = STYLE[s]
        xs = [c for c, _ in runs]
        left.plot(xs, [r["ops_per_s"] for _, r in runs], color=color, marker=marker, label=s)
        right.plot(xs, [r["p99_us"] / 1000 for _, r in runs], color=color, marker=marker, label=s)
    for ax, ylabel, title in ((left, spec.unit, "throughput"), (right, spec.latency, "p99 latency")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("clients C (log scale)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{workload}: {title}")
        ax.grid(True, which="both", alpha=0.3)
    left.set_ylim(bottom=0)
    left.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    right.set_yscale("log")
    right.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    right.yaxis.set_minor_formatter(NullFormatter())
    right.set_ylabel(spec.latency + ", log scale")
    left.legend(title="3 members each")
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def plots(results, directory):
    """Draws a PNG per workload; returns {workload: link relative to the repository root}."""
    plt = pyplot()
    if plt is None:
        return {}
    os.makedirs(directory, exist_ok=True)
    links = {}
    for workload in WORKLOADS:
        if results.clients(workload):
            path = os.path.join(directory, f"{workload}.png")
            draw(plt, results, workload, path)
            links[workload] = os.path.relpath(path, ROOT).replace(os.sep, "/")
    return links


# --- main ---------------------------------------------------------------------------------


def arguments():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="?", default=os.path.join(ROOT, "bench", "results"),
                   help="the directory of <system>.jsonl (default bench/results)")
    p.add_argument("--baseline", metavar="DIR", default=os.environ.get("BASELINE_RESULTS"),
                   help="an earlier run's results, for the no-regression targets (or BASELINE_RESULTS)")
    p.add_argument("--plots", metavar="DIR", help="where the PNGs go (default: plots/ next to RESULTS)")
    p.add_argument("--tolerance", metavar="PCT", type=float, default=10,
                   help="%% by which a sessions or watch-fanout figure may be worse than the baseline (10)")
    args = p.parse_args()
    for directory in (args.results, args.baseline):
        if directory and not os.path.isdir(directory):
            p.error(f"{directory} is not a directory of results (<system>.jsonl)")
    if args.plots is None:
        args.plots = os.path.join(os.path.dirname(os.path.abspath(args.results)), "plots")
    return args


def main():
    args = arguments()
    results = load(args.results)
    baseline = load(args.baseline) if args.baseline else None
    links = plots(results, args.plots)
    out = [header()]
    if results.failed:
        out.append("Runs that failed (see compare.sh's output): " + ", ".join(results.failed) + "\n")
    out += [targets(results, baseline, args.baseline, args.tolerance / 100), cpu_per_write(results), "## Results\n"]
    out += [workload_table(results, w, links.get(w)) for w in WORKLOADS]
    analysis = os.path.join(ROOT, "bench", "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            out.append(f.read())
    print("\n".join(part for part in out if part))


if __name__ == "__main__":
    main()
