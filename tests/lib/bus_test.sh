# Shared by the shell tests of ofe-eventbus; sourced after setting NAME.
# Gives BIN (the broker), TMP (removed at exit, with the broker killed),
# die/expect (a failure is counted in $fail) and bus_start.
BIN=${OFE_BUILD_DIR:-.}/eventbus/ofe-eventbus
TMP=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
PID=""
fail=0
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "FAIL: $*" >&2; fail=1; }
expect() { # expect NAME WANT GOT
    [ "$2" = "$3" ] || die "$1: want [$2] got [$3]"
}

# bus_start N [COMMAND...] -- [ARG...]: runs the broker in the background
# (under COMMAND, e.g. prlimit, when given) with --port 0 and the ARGs,
# logging to $TMP/log; PID is its process and PORT its RESP port, read from
# the Nth "ready" line of the log (this start's, the log being shared).
bus_start() {
    n=$1
    shift
    pre=""
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        pre="$pre $1"
        shift
    done
    [ $# -gt 0 ] && shift
    # shellcheck disable=SC2086 # the prefix is words
    $pre "$BIN" --port 0 "$@" >>"$TMP/log" 2>&1 &
    PID=$!
    i=0
    PORT=""
    while [ $i -lt 100 ] && [ -z "$PORT" ]; do
        PORT=$(grep 'ready:' "$TMP/log" | sed -n "${n}s/.*RESP on 127\.0\.0\.1:\([0-9]*\).*/\1/p")
        i=$((i + 1))
        sleep 0.05
    done
    [ -n "$PORT" ] || { die "broker did not start"; cat "$TMP/log" >&2; exit 1; }
}
