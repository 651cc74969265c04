#!/bin/sh
# ofe-eventbus when its storage fails: the file size limit (prlimit
# --fsize, what `ulimit -f` or systemd's LimitFSIZE= set) makes a segment
# write fail with EFBIG, as a full disk makes it fail with ENOSPC. The
# broker must stay up, refuse writes with a reason, report not ready,
# keep serving what it acknowledged, and after a restart (kill -9, no
# limit) hold exactly the acknowledged entries and take writes again.
set -u
NAME=bus-storage
. "$(dirname "$0")/../lib/bus_test.sh"

command -v redis-cli >/dev/null || { echo "redis-cli not installed"; exit 77; }
command -v prlimit >/dev/null || { echo "prlimit (util-linux) not installed"; exit 77; }

free_port() {
    python3 "$(dirname "$0")/../lib/free_port.py" --hold $$
}
http_status() { # http_status PATH -> the status code, 000 when no answer
    python3 - "$HPORT" "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}
start() { # start N [prlimit ARG...]
    n=$1
    shift
    HPORT=$(free_port)
    bus_start "$n" "$@" -- --http-port "$HPORT" --data-dir "$TMP/data" --fsync always
    R="redis-cli -p $PORT"
}

# --- writes until the limit ---------------------------------------------------
start 1 prlimit --fsize=300000
V=$(head -c 1000 /dev/zero | tr '\0' x)
acked=0
refused=""
i=0
while [ $i -lt 1000 ]; do
    i=$((i + 1))
    r=$($R XADD s '*' n "$i" v "$V" 2>&1)
    case "$r" in
    [0-9]*-[0-9]*) acked=$((acked + 1)) ;;
    *) refused=$r; break ;;
    esac
done
echo "acknowledged $acked entries before the write failed: $refused"
[ -n "$refused" ] || die "1000 entries of 1 KB fit under a 300 KB file size limit"
[ "$acked" -gt 100 ] || die "only $acked entries acknowledged"
kill -0 "$PID" 2>/dev/null || { die "the broker died at the file size limit"; cat "$TMP/log" >&2; exit 1; }
[ "$($R PING)" = "PONG" ] || die "PING after the storage failure"
r=$($R XADD s '*' n again 2>&1)
case "$r" in
*"storage failed"*"File too large"*"writes are refused"*) ;;
*) die "XADD after the failure: [$r]" ;;
esac
[ "$(http_status /readyz)" = "503" ] || die "/readyz is not 503 after the storage failure"
[ "$(http_status /healthz)" = "200" ] || die "/healthz is not 200 (the process is alive)"
grep -q "storage failure: write .*File too large" "$TMP/log" || die "no storage failure in the log"
# Everything acknowledged can still be read.
got=$($R XRANGE s - + | grep -c '^n$')
[ "$got" -ge "$acked" ] || die "XRANGE returns $got entries, $acked were acknowledged"
last=$($R XRANGE s - + | awk 'p { print; p = 0 } /^n$/ { p = 1 }' | sed -n "${acked}p")
[ "$last" = "$acked" ] || die "entry $acked reads back as [$last]"

# --- restart without the limit ---------------------------------------------------
kill -9 "$PID"
wait "$PID" 2>/dev/null
PID=""
start 2
len=$($R XLEN s)
[ "$len" = "$acked" ] || die "after restart XLEN is $len, $acked were acknowledged"
first=$($R XRANGE s - + COUNT 1 | sed -n 3p)
[ "$first" = "1" ] || die "the first entry reads back as [$first]"
r=$($R XADD s '*' n after 2>&1)
case "$r" in
[0-9]*-[0-9]*) ;;
*) die "XADD after restart: [$r]" ;;
esac
[ "$(http_status /readyz)" = "200" ] || die "/readyz is not 200 after the restart"

if [ $fail -ne 0 ]; then
    echo "--- broker log" >&2
    cat "$TMP/log" >&2
    exit 1
fi
echo "storage failure: writes refused with the reason, not ready, acknowledged entries kept: ok"
