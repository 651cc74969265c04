#!/bin/sh
# ofe-eventsource end to end, with the real programs a user runs: ofe-eventbus
# as the bus, `ofe sink` as the function, curl as the webhook caller, and
# `ofe tail` reading the bus topic, all configured from the YAML files in
# tests/fixtures/eventsource (ports through ${VAR}, the secret from a file):
#   - a signed GitHub webhook gets 202 and arrives at the sink and on the
#     bus with the documented attributes; a bad signature gets 401;
#   - cron ticks arrive with their scheduled time;
#   - SIGHUP adds an endpoint and keeps the unchanged EventSource running;
#   - --validate prints precise errors; SIGTERM exits 0.
set -eu
B=${OFE_BUILD_DIR:?}
S=${OFE_SOURCE_DIR:?}
FX="$S/tests/fixtures/eventsource"
D=$(mktemp -d "${TMPDIR:-/tmp}/ofe-es-e2e.XXXXXX")
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$D"/*.log "$D"/*.jsonl; do [ -f "$f" ] && { echo "--- $f" >&2; tail -40 "$f" >&2; }; done
    exit 1
}
free_port() { python3 "$S/tests/lib/free_port.py" --hold $$; }
# the sink's whole lines: it may be writing one as we read (cron ticks go on)
sink_lines() { perl -ne 'print if /\n\z/' "$D/sink.jsonl"; }
ticks() { sink_lines | jq -c 'select(.event.type == "dev.ofevents.cron.tick")'; }
wait_for() { # wait_for SECONDS COMMAND...
    n=$(( $1 * 20 )); shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt $n ] || return 1
        sleep 0.05
    done
}

export BUS_PORT=$(free_port) HOOK_PORT=$(free_port)
"$B/eventbus/ofe-eventbus" --port "$BUS_PORT" --http-port 0 --data-dir "$D/bus" > "$D/bus.log" 2>&1 &
PIDS="$PIDS $!"
"$B/cli/ofe" sink --port 0 --port-file "$D/sink.port" --json --output "$D/sink.jsonl" \
    > /dev/null 2> "$D/sink.log" &
PIDS="$PIDS $!"
wait_for 10 test -s "$D/sink.port" || fail "ofe sink did not start"
export SINK_PORT=$(cat "$D/sink.port")

# --validate: the daemon's own checks, with positions
set +e
"$B/eventsource/ofe-eventsource" --config "$FX/invalid.yaml" --validate > "$D/validate.log" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || fail "--validate of invalid.yaml exited $rc, not 2"
grep -q 'invalid.yaml:11:17: error: spec.cron.feb30.schedule: schedule "0 0 30 2 \*" never fires' "$D/validate.log" ||
    fail "no precise error for the schedule that never fires"
grep -q 'invalid.yaml:13:17: error: spec.cron.bad-field.schedule: .*hour field' "$D/validate.log" ||
    fail "no precise error for the hour 25"
grep -q 'invalid.yaml:17:14: error: spec.mqtt.m.topic: "a/#/b" is not a valid MQTT topic filter' "$D/validate.log" ||
    fail "no precise error for the topic filter"
"$B/eventsource/ofe-eventsource" --config "$FX/bus.yaml" --config "$FX/sources.yaml" --validate \
    > "$D/validate-ok.log" 2>&1 || fail "--validate of the good files failed"
grep -q 'configuration is valid: 2 event source(s), 2 event(s)' "$D/validate-ok.log" || fail "no summary"

cp "$FX/sources.yaml" "$D/sources.yaml"
cp "$FX/github-secret" "$D/github-secret"
ES_PORT=$(free_port)
"$B/eventsource/ofe-eventsource" --config "$FX/bus.yaml" --config "$D/sources.yaml" \
    --http-port "$ES_PORT" > "$D/eventsource.log" 2>&1 &
ES=$!
PIDS="$PIDS $ES"
wait_for 15 curl -sf "http://127.0.0.1:$ES_PORT/readyz" || fail "ofe-eventsource not ready"

# a signed GitHub delivery
body='{"ref":"refs/heads/main","commits":[]}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$FX/github-secret")" | sed 's/.*= //')
code=$(curl -s -o "$D/reply" -w '%{http_code}' -X POST "http://127.0.0.1:$HOOK_PORT/github" \
    -H "X-Hub-Signature-256: sha256=$sig" -H 'X-GitHub-Event: push' \
    -H 'X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958' \
    -H 'Content-Type: application/json' --data-binary "$body")
[ "$code" = 202 ] || fail "signed webhook: $code $(cat "$D/reply")"
code=$(curl -s -o "$D/reply" -w '%{http_code}' -X POST "http://127.0.0.1:$HOOK_PORT/github" \
    -H "X-Hub-Signature-256: sha256=$(echo "$sig" | tr 0-9a-f a-f0-9 | cut -c1-64)" \
    -H 'Content-Type: application/json' --data-binary "$body")
[ "$code" = 401 ] || fail "bad signature: $code"
# 202 came after the sink had it
ev=$(sink_lines | jq -c 'select(.event.id == "72d3162e-cc78-11e3-81ab-4c9367dc0958") | .event')
[ -n "$ev" ] || fail "the webhook event is not at the sink"
[ "$(echo "$ev" | jq -r .type)" = dev.ofevents.webhook.request ] || fail "type: $ev"
[ "$(echo "$ev" | jq -r .source)" = /namespaces/default/eventsources/github/push ] || fail "source: $ev"
[ "$(echo "$ev" | jq -r .subject)" = push ] || fail "subject: $ev"
[ "$(echo "$ev" | jq -r .datacontenttype)" = application/json ] || fail "datacontenttype: $ev"
[ "$(echo "$ev" | jq -c .data)" = '{"ref":"refs/heads/main","commits":[]}' ] || fail "data: $ev"
# and on the bus, read back with ofe tail
cat > "$D/tailbus.yaml" <<EOF
apiVersion: events.openfunction.io/v1alpha1
kind: EventBus
metadata: {name: default}
spec:
  embedded: {address: "127.0.0.1:$BUS_PORT"}
EOF
"$B/cli/ofe" tail --bus "$D/tailbus.yaml" --topic default-github-push --from oldest --count 1 \
    --timeout 10s > "$D/tail.jsonl" 2> "$D/tail.log" || fail "ofe tail found nothing on the bus"
grep -q '72d3162e-cc78-11e3-81ab-4c9367dc0958' "$D/tail.jsonl" || fail "the bus event has another id"

# cron ticks: id = time = the scheduled instant, 500 ms apart
three_ticks() { [ "$(ticks | wc -l)" -ge 3 ]; }
wait_for 10 three_ticks ||
    fail "fewer than 3 cron ticks"
ticks | jq -r '[.event.id == .event.time, .event.data.beat] | @tsv' |
    grep -qv '^true	true$' && fail "a tick without id = time or without its data"

# SIGHUP: a second endpoint of the github EventSource; only the new event
# starts, its sibling (push) and the clock keep running (2 kept)
cp "$FX/sources-reloaded.yaml" "$D/sources.yaml"
kill -HUP $ES
wait_for 10 grep -q '1 event(s) started, 2 kept, 0 stopped, 0 failed' "$D/eventsource.log" ||
    fail "the reload did not start only the new event"
wait_for 10 sh -c "curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:$HOOK_PORT/plain --data x | grep -q 202" ||
    fail "the new endpoint does not answer 202"
curl -sf "http://127.0.0.1:$ES_PORT/metrics" > "$D/metrics.txt"
grep -q '^ofe_eventsource_events_delivered_total{source="default/clock/beat",destination="sink"} ' "$D/metrics.txt" ||
    fail "no delivery metric of the cron source"
grep -q 'ofe_eventsource_delivery_latency_seconds_bucket{source="default/github/plain",destination="bus"' "$D/metrics.txt" ||
    fail "no latency histogram of the new webhook on the bus"

# SIGTERM: drains and exits 0
kill -TERM $ES
i=0
while kill -0 $ES 2>/dev/null; do i=$((i + 1)); [ $i -lt 300 ] || fail "no exit after SIGTERM"; sleep 0.05; done
wait $ES || fail "ofe-eventsource exited $? after SIGTERM"
grep -q 'stopped$' "$D/eventsource.log" || fail "no clean stop in the log"
echo "ok"
