#!/bin/sh
# `ofe validate` as a user runs it: output lines, exit codes, stdin, the
# reference dump.   test_config_cli.sh OFE FIXTURES_DIR
set -u
ofe=$1
fx=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ofe-validate-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # name, expected status, actual status
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1: exit status $3, expected $2"; fail=1
    fi
}
expect() { # name, file, fixed string
    if ! grep -qF -- "$3" "$2"; then
        echo "FAIL: $1: '$3' not in:"; sed 's/^/    /' "$2"; fail=1
    fi
}

# A valid file: "FILE: ok" on stdout, nothing on stderr, status 0.
"$ofe" validate "$fx/valid-all.yaml" >"$tmp/out" 2>"$tmp/err"
check valid 0 $?
expect valid "$tmp/out" "$fx/valid-all.yaml: ok"
[ -s "$tmp/err" ] && { echo "FAIL: valid: unexpected stderr"; cat "$tmp/err"; fail=1; }

# An invalid file next to a valid one: every error, a count, status 2.
"$ofe" validate "$fx/valid-all.yaml" "$fx/invalid-many.yaml" >"$tmp/out" 2>"$tmp/err"
check invalid 2 $?
expect invalid "$tmp/out" "$fx/valid-all.yaml: ok"
expect invalid "$tmp/out" "$fx/invalid-many.yaml: 3 errors"
expect invalid "$tmp/err" "$fx/invalid-many.yaml:6:1: error: spec: an EventSource needs a sink, an eventBus, or both (neither is given)"
expect invalid "$tmp/err" "$fx/invalid-many.yaml:8:27: error: spec.kafka.sample-one.brokers: 'no port' is not host:port"
expect invalid "$tmp/err" "$fx/invalid-many.yaml:11:17: error: spec.cron.tick.schedule: '*/5 * * *' has 4 fields"
# Sorted by line within a file.
first=$(grep -n "invalid-many.yaml:6:1" "$tmp/err" | cut -d: -f1)
last=$(grep -n "invalid-many.yaml:11:17" "$tmp/err" | cut -d: -f1)
[ "$first" -lt "$last" ] || { echo "FAIL: diagnostics not sorted"; fail=1; }

# Standard input, warnings, unresolved bus: a warning by default, an error
# with --strict.
cat >"$tmp/in.yaml" <<'YAML'
apiVersion: events.openfunction.io/v1alpha1
kind: EventSource
metadata: {name: s}
spec:
  eventBus: elsewhere
  cron: {t: {schedule: '@hourly'}}
  build: {}
YAML
"$ofe" validate - <"$tmp/in.yaml" >"$tmp/out" 2>"$tmp/err"
check stdin 0 $?
expect stdin "$tmp/out" "-: ok"
expect stdin "$tmp/err" "-:5:13: warning: spec.eventBus: eventBus \"elsewhere\": no EventBus"
expect stdin "$tmp/err" "-:7:10: warning: spec.build: ignored: function builds are not part of ofevents."
"$ofe" validate --strict - <"$tmp/in.yaml" >"$tmp/out" 2>"$tmp/err"
check strict 2 $?
expect strict "$tmp/err" "-:5:13: error: spec.eventBus: eventBus \"elsewhere\""
"$ofe" validate -q - <"$tmp/in.yaml" >"$tmp/out" 2>"$tmp/err"
check quiet 0 $?
[ -s "$tmp/out" ] || [ -s "$tmp/err" ] && { echo "FAIL: -q printed something"; fail=1; }

# --verbose tells how buses resolve.
"$ofe" validate -v "$fx/valid-all.yaml" >"$tmp/out" 2>"$tmp/err"
check verbose 0 $?
expect verbose "$tmp/out" "EventSource default/my-eventsource: eventBus \"default\" (namespace \"default\") is EventBus default/default from $fx/valid-all.yaml:18:1: the embedded bus (ofe-eventbus) at 127.0.0.1:6380"

# Missing file, YAML syntax error, usage errors.
"$ofe" validate "$tmp/none.yaml" >"$tmp/out" 2>"$tmp/err"
check missing 2 $?
expect missing "$tmp/err" "$tmp/none.yaml: error: cannot open: No such file or directory"
printf 'a: [b\n' >"$tmp/bad.yaml"
"$ofe" validate "$tmp/bad.yaml" >"$tmp/out" 2>"$tmp/err"
check syntax 2 $?
expect syntax "$tmp/err" "$tmp/bad.yaml:2:1: error: YAML syntax error: did not find expected ',' or ']'"
"$ofe" validate >"$tmp/out" 2>"$tmp/err"
check noargs 2 $?
"$ofe" validate --bogus x >"$tmp/out" 2>"$tmp/err"
check badopt 2 $?
expect badopt "$tmp/err" "ofe validate: unknown option '--bogus'"
"$ofe" validate --help >"$tmp/out" 2>&1
check help 0 $?
expect help "$tmp/out" "usage: ofe validate"

# The reference dump is Markdown with every kind.
"$ofe" validate --dump-reference >"$tmp/ref.md"
check dump 0 $?
expect dump "$tmp/ref.md" "### EventSource.spec.webhook.<event>"
expect dump "$tmp/ref.md" "### Trigger.spec.subscribers[]"

[ $fail = 0 ] && echo "all ofe validate checks passed"
exit $fail
