#!/usr/bin/env bash
# Two whole runs of the suite at once, in this clone, against the same PostgreSQL: each has its own database
# (test/support/RunDatabase.ts) and its own summary file. Both must pass. A test that fails only here depends on
# timing or on data it does not own.
set -u
cd "$(dirname "$0")/../.."
bash test/support/ensure-postgres.sh
logs="$(mktemp -d)"
pids=()
for run in 1 2; do
  ANNAL_TEST_SUMMARY="$logs/engines-$run.json" npx vitest run >"$logs/run-$run.log" 2>&1 &
  pids+=($!)
done
status=0
for run in 1 2; do
  if wait "${pids[$((run - 1))]}"; then result=passed; else result=FAILED; status=1; fi
  echo "run $run: $result ($(grep -E '^tests: ' "$logs/run-$run.log" | tail -n 1))"
done
[ "$status" -eq 0 ] || echo "logs in $logs"
exit "$status"
