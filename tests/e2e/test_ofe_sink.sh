#!/bin/sh
# `ofe sink` as a user runs it: injected failures with Retry-After, the
# JSON lines, duplicates, structured and batch requests, invalid requests,
# GET /stats, replies, delays, --count, --status, SIGTERM summary, usage.
set -eu
OFE="${OFE_BUILD_DIR:?}/cli/ofe"
D=$(mktemp -d "${TMPDIR:-/tmp}/ofe-sink-test.XXXXXX")
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    rm -rf "$D"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$D"/*.log "$D"/*.jsonl; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done; exit 1; }

# start NAME ARGS...: starts a sink on a free port, sets PORT
start() {
    name=$1; shift
    "$OFE" sink --port 0 --port-file "$D/$name.port" "$@" > "$D/$name.out" 2> "$D/$name.log" &
    PIDS="$PIDS $!"
    LAST=$!
    i=0
    while [ ! -s "$D/$name.port" ]; do
        i=$((i + 1)); [ $i -lt 200 ] || fail "$name did not start"
        sleep 0.05
    done
    PORT=$(cat "$D/$name.port")
}

binary() { # binary ID -> prints the status
    curl -s -o "$D/body" -D "$D/hdrs" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/fn" \
        -H 'ce-specversion: 1.0' -H "ce-id: $1" -H 'ce-source: /test' -H 'ce-type: t.x' \
        -H 'ce-myext: a%20b' -H 'Content-Type: text/plain' --data-binary 'hello'
}

start a --json --output "$D/a.jsonl" --fail-first 2 --retry-after 3
[ "$(binary e1)" = 503 ] || fail "first request not 503"
grep -qi '^retry-after: 3' "$D/hdrs" || fail "no Retry-After on the injected failure"
[ "$(binary e1)" = 503 ] || fail "second request not 503"
[ "$(binary e1)" = 200 ] || fail "third request not 200"
[ "$(binary e1)" = 200 ] || fail "duplicate not 200"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/s" \
    -H 'Content-Type: application/cloudevents+json' \
    --data '{"specversion":"1.0","id":"s1","source":"/test","type":"t.s","data":{"n":1}}')
[ "$code" = 200 ] || fail "structured: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/b" \
    -H 'Content-Type: application/cloudevents-batch+json' \
    --data '[{"specversion":"1.0","id":"b1","source":"/test","type":"t.b"},{"specversion":"1.0","id":"b2","source":"/test","type":"t.b","data":"x"}]')
[ "$code" = 200 ] || fail "batch: $code"
code=$(curl -s -o "$D/body" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/x" \
    -H 'Content-Type: text/plain' --data 'not an event')
[ "$code" = 400 ] || fail "invalid request: $code"
grep -q 'not a CloudEvent' "$D/body" || fail "400 without a reason"

stats=$(curl -s "http://127.0.0.1:$PORT/stats")
[ "$(echo "$stats" | jq -c .)" = '{"requests":7,"events":5,"unique":4,"duplicates":1,"failed":2,"invalid":1}' ] ||
    fail "stats: $stats"
lines=$(wc -l < "$D/a.jsonl")
[ "$lines" -eq 8 ] || fail "$lines JSON lines, 8 expected"
[ "$(jq -sc '[.[] | select(.event.id == "e1") | [.status, .attempt, .dup]]' "$D/a.jsonl")" = \
  '[[503,1,false],[503,2,false],[200,3,false],[200,4,true]]' ] || fail "e1 lines: $(cat "$D/a.jsonl")"
[ "$(jq -sc '[.[] | select(.event.id == "e1")][0].event | [.myext, .datacontenttype, .data, .source]' "$D/a.jsonl")" = \
  '["a b","text/plain","hello","/test"]' ] || fail "e1 attributes"
[ "$(jq -sc '[.[] | select(.path == "/s") | [.mode, .event.data.n]]' "$D/a.jsonl")" = '[["structured",1]]' ] ||
    fail "structured line"
[ "$(jq -sc '[.[] | select(.path == "/b") | [.mode, .event.id]]' "$D/a.jsonl")" = '[["batch","b1"],["batch","b2"]]' ] ||
    fail "batch lines"
[ "$(jq -sc '[.[] | select(.status == 400) | .path]' "$D/a.jsonl")" = '["/x"]' ] || fail "invalid line"
# mono grows and is a number
jq -se 'map(.mono) | (. == sort) and all(type == "number")' "$D/a.jsonl" > /dev/null || fail "mono"
kill -TERM "$LAST"
wait "$LAST" || fail "ofe sink did not exit 0 on SIGTERM"
grep -q '7 request(s), 5 event(s) accepted, 4 unique, 1 duplicate(s), 2 failed on purpose, 1 invalid' "$D/a.log" ||
    fail "summary on SIGTERM: $(cat "$D/a.log")"

# Replies, text output.
start r --reply-type pong
binary r1 > /dev/null
grep -qi '^ce-type: pong' "$D/hdrs" || fail "no reply event"
grep -qi '^ce-id: reply-r1' "$D/hdrs" || fail "reply id"
[ "$(cat "$D/body")" = hello ] || fail "reply data"
kill -TERM "$LAST"; wait "$LAST" || true
grep -q 'myext: a b' "$D/r.out" || fail "text output: $(cat "$D/r.out")"
grep -q 'data (5 bytes): hello' "$D/r.out" || fail "text output data"

# --status, --delay (a lower bound only), --count.
start s --status 400 --quiet
[ "$(binary q1)" = 400 ] || fail "--status 400"
kill -TERM "$LAST"; wait "$LAST" || true
[ ! -s "$D/s.out" ] || fail "--quiet printed"
start d --delay 300 --quiet --count 2
t0=$(date +%s%N)
binary d1 > /dev/null
t1=$(date +%s%N)
[ $(((t1 - t0) / 1000000)) -ge 300 ] || fail "--delay 300 answered after $(((t1 - t0) / 1000000)) ms"
binary d2 > /dev/null
i=0
while kill -0 "$LAST" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "--count 2 did not exit"
    sleep 0.05
done
wait "$LAST" || fail "--count exit status"

# Usage errors.
set +e
"$OFE" sink --fail-rate 2 > /dev/null 2>&1; [ $? -eq 2 ] || fail "--fail-rate 2 accepted"
"$OFE" sink --bogus > /dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option accepted"
"$OFE" sink --help | grep -q -- '--fail-first' || fail "--help"
echo "ofe sink: failures with Retry-After, JSON lines, duplicates, structured, batch, invalid, stats, replies, delay, count: ok"
