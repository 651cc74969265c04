#!/bin/sh
# Benchmark of ofe-eventbus against redis-server (a program, not a test: it
# prints figures and ratios and never fails on timing).
#
#   tests/bench/bench_eventbus.sh [N]     N: XADD requests (default 500000)
#
# One run measures, with the same redis-benchmark parameters
# (-n N -c 50 -P 16, XADD to one stream, one field with a 512-byte value):
#   1. XADD/s of redis-server (appendonly yes, appendfsync everysec) and of
#      ofe-eventbus (fsync everysec), and the ratio;
#   2. consume/s: bench_eventbus_consume drains each stream through a group
#      (XREADGROUP COUNT 100 + XACK via hiredis), and the ratio;
#   3. XADD/s of ofe-eventbus with fsync always (group commit);
#   4. resident memory of ofe-eventbus holding 1,000,000 stored 512-byte
#      events, after loading them and after a restart (recovery).
# Environment: OFE_BUILD_DIR (default ./build).
set -eu
N=${1:-500000}
BUILD=${OFE_BUILD_DIR:-build}
BUS=$BUILD/eventbus/ofe-eventbus
CONSUME=$BUILD/tests/bench_eventbus_consume
for b in "$BUS" "$CONSUME"; do
    [ -x "$b" ] || { echo "missing $b (build first)" >&2; exit 1; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-bus.XXXXXX")
PIDS=""
cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
VALUE=$(head -c 512 /dev/zero | tr '\0' 'v')
BENCH="-n $N -c 50 -P 16"

free_port() { python3 "$(dirname "$0")/../lib/free_port.py" --hold $$; }
wait_port() {
    i=0
    while ! redis-cli -p "$1" PING >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 200 ] && { echo "server on $1 did not start" >&2; exit 1; }
        sleep 0.05
    done
}
start_redis() { # dir port
    mkdir -p "$1"
    redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly yes \
        --appendfsync everysec --dir "$1" --daemonize no --logfile "$1/log" &
    PIDS="$PIDS $!"; LAST=$!
    wait_port "$2"
}
start_bus() { # dir port fsync
    "$BUS" --port "$2" --http-port 0 --data-dir "$1" --fsync "$3" --log-level warn \
        >>"$TMP/bus.log" 2>&1 &
    PIDS="$PIDS $!"; LAST=$!
    wait_port "$2"
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }
xadd_rps() { # port
    redis-benchmark -p "$1" $BENCH --csv XADD bench '*' f "$VALUE" 2>/dev/null |
        awk -F'","' 'NR==2 {print $2}'
}
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "ofe-eventbus benchmark: redis-benchmark $BENCH XADD bench * f <512 bytes>"
echo "machine: $(nproc) cores, $(uname -sr); $(redis-server --version | cut -d' ' -f1-3)"
echo

P=$(free_port); start_redis "$TMP/redis" "$P"; R=$LAST
redis_xadd=$(xadd_rps "$P")
redis_cons=$("$CONSUME" "$P" bench "$N" 100 2>/dev/null)
stop "$R"

P=$(free_port); start_bus "$TMP/bus-everysec" "$P" everysec; B=$LAST
bus_xadd=$(xadd_rps "$P")
bus_cons=$("$CONSUME" "$P" bench "$N" 100 2>/dev/null)
stop "$B"

P=$(free_port); start_bus "$TMP/bus-always" "$P" always; B=$LAST
bus_always=$(xadd_rps "$P")
stop "$B"

printf '%-44s %12s\n' "XADD requests/s" ""
printf '  %-42s %12.0f\n' "redis-server (appendfsync everysec)" "$redis_xadd"
printf '  %-42s %12.0f   ratio %sx\n' "ofe-eventbus (fsync everysec)" "$bus_xadd" \
    "$(ratio "$bus_xadd" "$redis_xadd")"
printf '  %-42s %12.0f   ratio %sx\n' "ofe-eventbus (fsync always, group commit)" "$bus_always" \
    "$(ratio "$bus_always" "$redis_xadd")"
printf '%-44s\n' "consume entries/s (XREADGROUP COUNT 100 + XACK)"
printf '  %-42s %12.0f\n' "redis-server" "$redis_cons"
printf '  %-42s %12.0f   ratio %sx\n' "ofe-eventbus (fsync everysec)" "$bus_cons" \
    "$(ratio "$bus_cons" "$redis_cons")"

# Memory with 1,000,000 stored 512-byte events.
P=$(free_port); start_bus "$TMP/bus-rss" "$P" everysec; B=$LAST
redis-benchmark -p "$P" -n 1000000 -c 50 -P 16 -q XADD big '*' f "$VALUE" >/dev/null 2>&1
stored=$(redis-cli -p "$P" XLEN big)
rss_loaded=$(rss_mib "$B")
disk=$(du -sm "$TMP/bus-rss" | cut -f1)
stop "$B"
start_bus "$TMP/bus-rss" "$P" everysec; B=$LAST
rss_restart=$(rss_mib "$B")
stop "$B"
echo "resident memory of ofe-eventbus with $stored stored 512-byte events:"
printf '  %-42s %9s MiB\n' "after loading them" "$rss_loaded" "after a restart (index rebuilt)" \
    "$rss_restart"
printf '  %-42s %9s MiB\n' "on disk" "$disk"
