#!/usr/bin/env bash
# The flake hunt: `make unit` RUNS times in a row with HOGS CPU-bound processes beside it.
#
#   tests/soak.sh [RUNS]        (or: make soak RUNS=10)
#
# Each hog is `python3 -c 'while True: pass'`: on a 2-core machine two of them take what the
# test workers would otherwise have, as a busy CI runner does. Every run's output is kept in
# .test-artifacts/soak/run-N.log; the summary gives each run's result, its time and the load
# average (uptime) at its end, then the failed tests. Exits 1 if any run failed.
set -u
cd "$(dirname "$0")/.."
runs="${1:-${RUNS:-10}}"
hogs="${HOGS:-2}"
logs=.test-artifacts/soak
mkdir -p "$logs"
rm -f "$logs"/run-*.log

pids=()
stop_hogs() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null; }
trap stop_hogs EXIT
for _ in $(seq "$hogs"); do
  python3 -c 'while True: pass' &
  pids+=($!)
done
echo "soak: $runs runs of make unit beside $hogs CPU hogs (pids ${pids[*]:-none}) on $(nproc) cores"

passed=0
for i in $(seq "$runs"); do
  started=$(date +%s%N)
  if make --no-print-directory unit >"$logs/run-$i.log" 2>&1; then
    result=pass
    passed=$((passed + 1))
  else
    result=FAIL
  fi
  tenths=$((($(date +%s%N) - started) / 100000000))
  summary=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$logs/run-$i.log" | tail -1)
  printf 'run %2d: %s in %3d.%d s (%s; load average %s)\n' "$i" "$result" $((tenths / 10)) $((tenths % 10)) "$summary" \
    "$(uptime | sed 's/.*load average: //')"
  grep -E '^(FAILED|ERROR) tests/' "$logs/run-$i.log" | sed 's/^/        /'
done
echo "soak: $passed of $runs runs passed (logs in $logs/)"
[ "$passed" -eq "$runs" ]
