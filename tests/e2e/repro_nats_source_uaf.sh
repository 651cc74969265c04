#!/bin/sh
# Reproducer (found by the chaos engineer while running scripts/bench):
# eventsource/source_nats.c frees its context right after
# natsConnection_Close(), but cnats runs the connection's disconnected
# callback (on_disconnected, which reads n->c and n->s) afterwards on its
# own callback thread: a use-after-free. bench_eventsource crashed with
# SIGSEGV in on_disconnected this way; in ofe-eventsource it happens when a
# SIGHUP reload removes (or changes) a NATS source, and at exit.
#
#   tests/e2e/repro_nats_source_uaf.sh BUILD_DIR     (an ASan build shows it best)
# Exit status 1 when the daemon crashed or ASan reported an error, 0 if not.
set -u
BUILD=${1:-build}
ES=$BUILD/eventsource/ofe-eventsource
command -v nats-server >/dev/null || { echo "nats-server missing"; exit 77; }
D=$(mktemp -d "${TMPDIR:-/tmp}/repro-nats.XXXXXX")
trap 'kill -9 $NATS $ESP 2>/dev/null; rm -rf "$D"' EXIT
port() { python3 "$(dirname "$0")/../lib/free_port.py" --hold $$; }
NP=$(port); HP=$(port)
nats-server -a 127.0.0.1 -p "$NP" >"$D/nats.log" 2>&1 & NATS=$!
sleep 0.5
cat >"$D/es.yaml" <<YAML
apiVersion: events.openfunction.io/v1alpha1
kind: EventSource
metadata: {name: repro}
spec:
  sink: {uri: 'http://127.0.0.1:1/'}
  nats:
    ev: {url: 'nats://127.0.0.1:$NP', subject: repro}
YAML
ASAN_OPTIONS=abort_on_error=1:detect_leaks=0 "$ES" --config "$D/es.yaml" --http-port "$HP" >"$D/es.log" 2>&1 & ESP=$!
for i in $(seq 100); do curl -sf "http://127.0.0.1:$HP/readyz" >/dev/null && break; sleep 0.1; done
# Reload without the NATS source and back, 15 times: each removal destroys
# a connected NATS source while the process lives on.
cp "$D/es.yaml" "$D/with.yaml"
cat >"$D/without.yaml" <<YAML
apiVersion: events.openfunction.io/v1alpha1
kind: EventSource
metadata: {name: repro}
spec:
  sink: {uri: 'http://127.0.0.1:1/'}
  cron:
    tick: {schedule: '@every 1h'}
YAML
for i in $(seq 15); do
    cp "$D/without.yaml" "$D/es.yaml"; kill -HUP $ESP 2>/dev/null; sleep 0.3
    cp "$D/with.yaml" "$D/es.yaml"; kill -HUP $ESP 2>/dev/null; sleep 0.3
done
sleep 1
if ! kill -0 $ESP 2>/dev/null || grep -q "ERROR: AddressSanitizer" "$D/es.log"; then
    echo "ofe-eventsource crashed after a reload:"; grep -A 30 "ERROR: AddressSanitizer" "$D/es.log" || tail -n 40 "$D/es.log"; exit 1
fi
kill -TERM $ESP; wait $ESP; st=$?
if [ $st -ne 0 ] || grep -q "ERROR: AddressSanitizer" "$D/es.log"; then
    echo "ofe-eventsource exited $st:"; tail -n 40 "$D/es.log"; exit 1
fi
echo "no crash seen"; tail -n 8 "$D/es.log"; exit 0
