#!/bin/sh
# The suite beside a CPU hog (Tollgate issue 22): starts busy loops until the 1-minute load average is at least
# $BUSY_LOAD (default 8), runs `npm test`, stops the loops, and prints the wall time, the exit code and the load seen.
# Run it on an otherwise quiet machine: it is the proof that the suite does not depend on speed.
#   scripts/busy-test.sh                 # 8 loops, load >= 8
#   BUSY_LOOPS=12 BUSY_LOAD=10 scripts/busy-test.sh -- test/cli.test.ts   # args after -- go to vitest
#   BUSY_NICE=10 scripts/busy-test.sh    # loops at a lower priority: the load stays >= 8, the suite gets about half the CPU
set -u
cd "$(dirname "$0")/.."
loops=${BUSY_LOOPS:-8}
target=${BUSY_LOAD:-8}
priority=${BUSY_NICE:-0}
[ "${1:-}" = "--" ] && shift

load() { cut -d' ' -f1 /proc/loadavg; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

pids=""
stop_hog() {
  for pid in $pids; do kill "$pid" 2>/dev/null; done
  pids=""
}
trap 'stop_hog; [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null' EXIT INT TERM

i=0
while [ "$i" -lt "$loops" ]; do
  # A shell busy loop: no package; the tests' priority unless BUSY_NICE says lower.
  nice -n "$priority" sh -c 'while :; do :; done' &
  pids="$pids $!"
  i=$((i + 1))
done
echo "busy-test: $loops busy loops (nice $priority) started; waiting for load average >= $target (now $(load))"
waited=0
until at_least "$(load)" "$target"; do
  sleep 5
  waited=$((waited + 5))
  if [ "$waited" -ge 300 ]; then
    echo "busy-test: load average still $(load) after 5 minutes; set BUSY_LOOPS higher" >&2
    exit 2
  fi
done
echo "busy-test: load average $(load); running npm test"

samples=$(mktemp)
( while :; do load >>"$samples"; sleep 10; done ) &
sampler=$!

start=$(date +%s)
if [ "$#" -gt 0 ]; then npm test -- "$@"; else npm test; fi
code=$?
end=$(date +%s)

kill "$sampler" 2>/dev/null
sampler=""
stop_hog
summary=$(sort -n "$samples" | awk '{ v[NR] = $1; s += $1 } END { if (NR) printf "min %.2f, mean %.2f, max %.2f over %d samples", v[1], s / NR, v[NR], NR }')
rm -f "$samples"
echo "busy-test: npm test exited $code in $((end - start)) s beside $loops busy loops (nice $priority); load average $summary"
exit "$code"
