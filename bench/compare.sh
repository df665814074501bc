#!/usr/bin/env bash
# Runs the same workloads against warden, etcd and ZooKeeper, each as 3 members on
# loopback with default fsync, one system at a time, and writes BENCHMARKS.md.
#
#   bench/compare.sh                  # the full matrix (C = 1, 16, 64, 256)
#   CLIENTS=1,16 DURATION=5s bench/compare.sh   # a shorter one
#   HELD_LOCKS=1000000 bench/compare.sh         # also hold 1M locks with $SESSIONS sessions
#   HELD_LOCKS=1000000 HELD_LOCKS_SYSTEMS=warden bench/compare.sh   # ... on warden only
#   SYSTEMS=zookeeper APPEND=1 bench/compare.sh  # redo one system, keeping the others' results
#   cp -r bench/results /tmp/before && BASELINE_RESULTS=/tmp/before bench/compare.sh
#                                     # judge "no regression" (sessions, watch-fanout) against an earlier run
#
# Needs root for apt-get (Debian's etcd-server 3.4, zookeeper 3.8, protobuf-compiler for
# etcd-client's build, python3-venv). Results go to bench/results/*.jsonl; the report and
# its plots (bench/plots/*.png) are generated from them by bench/report.py. A run during
# which other processes used more than $DISTURBED_PCT % of a core is repeated once, and
# both are kept.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
CLIENTS="${CLIENTS:-1,16,64,256}"
WARMUP="${WARMUP:-3s}"
DURATION="${DURATION:-15s}"
WORKLOADS="${WORKLOADS-lock-uncontended,lock-contended,kv-write,kv-read,kv-read-local,watch-fanout}"
SESSIONS="${SESSIONS:-10000}"
DISTURBED_PCT="${DISTURBED_PCT:-25}"
SYSTEMS="${SYSTEMS:-warden etcd zookeeper}"
HELD_LOCKS_SYSTEMS="${HELD_LOCKS_SYSTEMS:-$SYSTEMS}"
OUT="$ROOT/bench/results"
WORK="$(mktemp -d /tmp/warden-compare.XXXXXX)"
mkdir -p "$OUT"
# 10,000 sessions are 10,000 sockets in the load generator and on the leader.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

need=()
command -v etcd >/dev/null || need+=(etcd-server)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v java >/dev/null || need+=(default-jre-headless)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi

# The report's plots need matplotlib: pinned, in a virtualenv of its own (like CI's
# schemathesis); pip does nothing when it is already installed. Done before the runs so a
# failure shows at once; without it the report is still written, without plots.
PLOT_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/warden-bench/matplotlib"
REPORT_PYTHON=python3
if { [ -x "$PLOT_VENV/bin/pip" ] || python3 -m venv "$PLOT_VENV"; } &&
  "$PLOT_VENV/bin/pip" install --quiet --disable-pip-version-check "matplotlib==3.10.8"; then
  REPORT_PYTHON="$PLOT_VENV/bin/python"
else
  echo "matplotlib could not be installed in $PLOT_VENV: BENCHMARKS.md will have no plots" >&2
fi

PROTOC="$(command -v protoc)" cargo build --release -p warden-bench --features peers >&2
BENCH="$ROOT/target/release/warden-bench"

pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'cleanup; rm -rf "$WORK"' EXIT

start_etcd() {
  local cluster="n1=http://127.0.0.1:23801,n2=http://127.0.0.1:23802,n3=http://127.0.0.1:23803"
  for i in 1 2 3; do
    etcd --name "n$i" --data-dir "$WORK/etcd$i" \
      --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
      --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token warden-bench \
      --log-level error >"$WORK/etcd$i.log" 2>&1 &
    pids+=($!)
  done
  ENDPOINTS="http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793"
  for _ in $(seq 100); do
    if python3 -c 'import sys,urllib.request; sys.exit(0 if b"true" in urllib.request.urlopen("http://127.0.0.1:23791/health", timeout=2).read() else 1)' 2>/dev/null; then return; fi
    sleep 0.2
  done
  echo "etcd did not become healthy; logs in $WORK" >&2; exit 1
}

start_zookeeper() {
  for i in 1 2 3; do
    mkdir -p "$WORK/zk$i"; echo "$i" >"$WORK/zk$i/myid"
    cat >"$WORK/zk$i.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$WORK/zk$i
clientPort=$((21810 + i))
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr
server.1=127.0.0.1:28881:38881
server.2=127.0.0.1:28882:38882
server.3=127.0.0.1:28883:38883
CFG
    java -Dzookeeper.log.dir="$WORK" -Dzookeeper.root.logger=WARN,CONSOLE \
      -cp /etc/zookeeper/conf_example:/usr/share/java/zookeeper.jar \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$WORK/zk$i.cfg" >"$WORK/zk$i.log" 2>&1 &
    pids+=($!)
  done
  ENDPOINTS="127.0.0.1:21811,127.0.0.1:21812,127.0.0.1:21813"
  for _ in $(seq 150); do
    local modes=0
    for i in 1 2 3; do
      if echo srvr | timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$((21810 + i)); cat >&3; cat <&3" 2>/dev/null | grep -q Mode; then
        modes=$((modes + 1))
      fi
    done
    [ "$modes" = 3 ] && return
    sleep 0.2
  done
  echo "ZooKeeper did not form a quorum; logs in $WORK" >&2; exit 1
}

# One workload at one client count; repeated once if others used too much CPU.
run_one() {
  local system="$1" workload="$2" clients="$3" file="$4"; shift 4
  local extra=("$@")
  for attempt in 1 2; do
    local line
    if ! line="$("$BENCH" --system "$system" --workload "$workload" --clients "$clients" \
      --warmup "$WARMUP" --duration "$DURATION" --json "${extra[@]}")"; then
      echo "run failed: $system $workload C=$clients (kept going; see above)" >&2
      echo "{\"system\": \"$system\", \"workload\": \"$workload\", \"clients\": $clients, \"failed\": true}" >>"$file"
      return
    fi
    echo "$line" | tee -a "$file"
    local other
    other="$(echo "$line" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["other_cpu_percent"]))')"
    if [ "$other" -le "$DISTURBED_PCT" ]; then return; fi
    echo "disturbed: other processes used ${other}% of a core; repeating" >&2
  done
}

for system in $SYSTEMS; do
  file="$OUT/$system.jsonl"
  [ -n "${APPEND:-}" ] || : >"$file"
  extra=()
  case "$system" in
    warden) ;;
    etcd) start_etcd; extra=(--endpoints "$ENDPOINTS" --pids "$(IFS=,; echo "${pids[*]}")") ;;
    zookeeper) start_zookeeper; extra=(--endpoints "$ENDPOINTS" --pids "$(IFS=,; echo "${pids[*]}")") ;;
  esac
  IFS=, read -ra wl <<<"$WORKLOADS"
  IFS=, read -ra cs <<<"$CLIENTS"
  for w in "${wl[@]}"; do
    for c in "${cs[@]}"; do
      run_one "$system" "$w" "$c" "$file" "${extra[@]}"
    done
  done
  run_one "$system" sessions 1 "$file" --sessions "$SESSIONS" --ttl 30 "${extra[@]}"
  if [ -n "${HELD_LOCKS:-}" ] && [[ " $HELD_LOCKS_SYSTEMS " == *" $system "* ]]; then
    run_one "$system" held-locks 64 "$file" --sessions "$SESSIONS" --locks "$HELD_LOCKS" --ttl 60 "${extra[@]}"
  fi
  cleanup; pids=()
done

"$REPORT_PYTHON" "$ROOT/bench/report.py" "$OUT" >"$ROOT/BENCHMARKS.md"
echo "wrote BENCHMARKS.md (and bench/plots/*.png)" >&2
