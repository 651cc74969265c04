#!/bin/sh
# ofe-eventbus used as a user would from a shell: command line (--help,
# --version, bad flags, --validate), redis-cli (commands, --raw, AUTH,
# --pipe mass insertion), redis-benchmark, a second instance on the same
# data directory (refused), SIGTERM (clean exit), restart (data kept).
set -u
NAME=bus-cli
. "$(dirname "$0")/../lib/bus_test.sh"

command -v redis-cli >/dev/null || { echo "redis-cli not installed"; exit 77; }

# --- command line -----------------------------------------------------------
"$BIN" --help | grep -q -- "--fsync always|everysec|no" || die "--help"
"$BIN" --version | grep -q "^ofe-eventbus " || die "--version"
"$BIN" --bogus >/dev/null 2>&1; expect "bad flag exit" 2 $?
"$BIN" --fsync sometimes >/dev/null 2>&1; expect "bad --fsync exit" 2 $?
"$BIN" --port 99999 >/dev/null 2>&1; expect "bad --port exit" 2 $?
cat > "$TMP/bus.yaml" <<YAML
apiVersion: events.openfunction.io/v1alpha1
kind: EventBus
metadata:
  name: default
spec:
  embedded:
    fsync: always
YAML
"$BIN" --config "$TMP/bus.yaml" --validate >/dev/null; expect "--validate" 0 $?
printf 'kind: EventBus\nspec: {embedded: {fsync: sometimes}}\n' > "$TMP/bad.yaml"
"$BIN" --config "$TMP/bad.yaml" --validate >/dev/null 2>&1; expect "--validate bad file" 2 $?

# --- start --------------------------------------------------------------------
start() { # start N [CONFIG]
    bus_start "$1" -- --config "$TMP/${2:-bus.yaml}" --http-port 0 --data-dir "$TMP/data" \
        --requirepass s3
}
start 1
R="redis-cli -p $PORT -a s3 --no-auth-warning"

# --- redis-cli ------------------------------------------------------------------
expect "PING" PONG "$($R PING)"
expect "NOAUTH" "NOAUTH Authentication required." "$(redis-cli -p "$PORT" XLEN s 2>&1)"
expect "XADD" "1-1" "$($R XADD orders 1-1 item apple qty 3)"
$R XADD orders '*' item pear qty 1 | grep -Eq '^[0-9]{13}-0$' || die "XADD *"
expect "XLEN" 2 "$($R XLEN orders)"
expect "XRANGE" "1-1 item apple qty 3" "$($R --raw XRANGE orders - + COUNT 1 | paste -sd' ')"
expect "XGROUP" OK "$($R XGROUP CREATE orders billing 0)"
expect "XREADGROUP" "orders 1-1 item apple qty 3" \
    "$($R --raw XREADGROUP GROUP billing w1 COUNT 1 STREAMS orders '>' | paste -sd' ')"
expect "XPENDING" "1 1-1 1-1 w1 1" "$($R --raw XPENDING orders billing | paste -sd' ')"
expect "XACK" 1 "$($R XACK orders billing 1-1)"
expect "XINFO" 2 "$($R --raw XINFO STREAM orders | sed -n '/^length$/{n;p}')"
expect "error" "ERR unknown command 'NOPE', with args beginning with: 'x' " "$($R NOPE x 2>&1)"

# Mass insertion with --pipe (raw RESP on stdin).
i=0
while [ $i -lt 1000 ]; do
    printf '*5\r\n$4\r\nXADD\r\n$4\r\nmass\r\n$1\r\n*\r\n$1\r\nn\r\n$%d\r\n%d\r\n' ${#i} $i
    i=$((i + 1))
done > "$TMP/mass.resp"
$R --pipe < "$TMP/mass.resp" > "$TMP/pipe.out" 2>&1
grep -q "errors: 0, replies: 1000" "$TMP/pipe.out" || die "--pipe: $(cat "$TMP/pipe.out")"
expect "XLEN mass" 1000 "$($R XLEN mass)"

# redis-benchmark with a custom stream command.
redis-benchmark -p "$PORT" -a s3 -n 2000 -c 4 -P 8 -q XADD bench '*' f v 2>/dev/null \
    | grep -q "requests per second" || die "redis-benchmark"
expect "XLEN bench" 2000 "$($R XLEN bench)"

# --- a second instance on the same data directory ---------------------------------
"$BIN" --port 0 --http-port 0 --data-dir "$TMP/data" >"$TMP/second" 2>&1
rc=$?
[ $rc -ne 0 ] || die "second instance started"
grep -q "is in use by another ofe-eventbus (pid $PID)" "$TMP/second" || \
    die "second instance message: $(cat "$TMP/second")"

# --- SIGTERM, restart ---------------------------------------------------------------
kill -TERM "$PID"
i=0
while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
wait "$PID"; rc=$?
PID=""
expect "SIGTERM exit status" 0 $rc
grep -q "stopping: data flushed and synced" "$TMP/log" || die "no shutdown line"
start 2
R="redis-cli -p $PORT -a s3 --no-auth-warning"
expect "XLEN after restart" 2 "$($R XLEN orders)"
expect "XLEN mass after restart" 1000 "$($R XLEN mass)"
expect "group after restart" 0 "$($R --raw XPENDING orders billing | head -1)"
kill -TERM "$PID"; wait "$PID"; PID=""
# Retention from a file (maxEntries 500) trims within a couple of seconds.
sed 's/    fsync: always/    fsync: always\n    retention:\n      maxEntries: 500/' \
    "$TMP/bus.yaml" > "$TMP/retain.yaml"
start 3 retain.yaml
R="redis-cli -p $PORT -a s3 --no-auth-warning"
i=0
while [ "$($R XLEN mass)" != 500 ] && [ $i -lt 60 ]; do sleep 0.1; i=$((i + 1)); done
expect "retention maxEntries" 500 "$($R XLEN mass)"
kill -TERM "$PID"; wait "$PID"; PID=""

# --- TLS on the RESP port ---------------------------------------------------------
if command -v openssl >/dev/null && redis-cli --help 2>&1 | grep -q -- '--tls'; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" \
        -days 2 -subj "/CN=127.0.0.1" >/dev/null 2>&1
    "$BIN" --port 0 --http-port 0 --data-dir "$TMP/tls" --tls-cert "$TMP/cert.pem" \
        --tls-key "$TMP/key.pem" >"$TMP/tls.log" 2>&1 &
    PID=$!
    i=0; TP=""
    while [ -z "$TP" ] && [ $i -lt 100 ]; do
        TP=$(sed -n 's/.*RESP on 127\.0\.0\.1:\([0-9]*\) (TLS).*/\1/p' "$TMP/tls.log")
        i=$((i + 1)); sleep 0.05
    done
    T="redis-cli --tls --cacert $TMP/cert.pem -p $TP"
    expect "TLS PING" PONG "$($T PING)"
    head -c 200000 /dev/zero | tr '\0' 'b' | $T -x XADD tls 1-1 f >/dev/null
    expect "TLS large value" 200000 "$($T --raw XRANGE tls - + | sed -n 3p | tr -d '\n' | wc -c)"
    redis-cli -p "$TP" PING >/dev/null 2>&1 && die "plain text accepted on the TLS port"
    kill -TERM "$PID"; wait "$PID"; PID=""
else
    echo "TLS check skipped (no openssl or redis-cli without --tls)"
fi

[ $fail -eq 0 ] && echo ok || { cat "$TMP/log" >&2; echo FAILED; }
exit $fail
