#!/usr/bin/env bash
# Leader failover of three `warden server` processes started from config/node1-3.toml
# (default timeouts: heartbeat 100 ms, election timeout 1000 ms): SIGKILL the leader and
# time until the first put through the CLI is committed. Prints one line per run.
#   cargo build --release -p warden && bench/failover.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release/warden
E=127.0.0.1:7400,127.0.0.1:7410,127.0.0.1:7420
runs=${1:-5}
for run in $(seq "$runs"); do
  D=$(mktemp -d)
  pids=()
  for i in 1 2 3; do
    sed "s|./warden-data/node$i|$D/node$i|" "config/node$i.toml" > "$D/node$i.toml"
    "$B" server --config "$D/node$i.toml" 2>"$D/log$i" &
    pids+=($!)
    disown
  done
  until "$B" --endpoints $E put /failover 1 >/dev/null 2>&1; do sleep 0.1; done
  leader=$("$B" --endpoints $E cluster status -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')
  t0=$(date +%s.%N)
  kill -9 "${pids[$((leader - 1))]}"
  until "$B" --endpoints $E put /failover 2 >/dev/null 2>&1; do sleep 0.02; done
  t1=$(date +%s.%N)
  python3 -c "print(f'run $run: leader $leader killed, first write committed after {($t1 - $t0):.2f} s')"
  kill -9 "${pids[@]}" 2>/dev/null || true
  sleep 0.5
  rm -rf "$D"
done
