#!/bin/sh
# `ofe ce validate` and `ofe ce http`, run the way a user runs them: output,
# error messages and exit codes.
#   test_ce_cli.sh OFE_BINARY FIXTURE_DIR
set -u
OFE=$1
FIX=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ofe-ce-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# run NAME WANT_RC CMD... : runs CMD, keeps stdout/stderr in $tmp/out, $tmp/err
run() {
    name=$1
    want=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "$name: exit $rc, want $want (stderr: $(cat "$tmp/err"))"
}

# same_text NAME FILE EXPECTED_TEXT
same_text() {
    printf '%s\n' "$3" >"$tmp/want"
    cmp -s "$2" "$tmp/want" || fail "$1: got [$(cat "$2")], want [$3]"
}

cd "$FIX" || exit 1

# ---- validate: valid events and batches
for f in spec-binary-data.json spec-xml-data.json spec-json-data.json spec-string-data.json \
         unicode.json; do
    run "validate $f" 0 "$OFE" ce validate "$f"
    same_text "validate $f stdout" "$tmp/out" "ok"
    [ -s "$tmp/err" ] && fail "validate $f: unexpected stderr $(cat "$tmp/err")"
done
run "validate batch" 0 "$OFE" ce validate spec-batch.json
same_text "validate batch stdout" "$tmp/out" "ok (2 events)"
run "validate empty batch" 0 "$OFE" ce validate empty-batch.json
same_text "validate empty batch stdout" "$tmp/out" "ok (0 events)"
run "validate stdin" 0 "$OFE" ce validate <spec-json-data.json
same_text "validate stdin stdout" "$tmp/out" "ok"
run "validate -" 0 "$OFE" ce validate - <spec-batch.json
same_text "validate - stdout" "$tmp/out" "ok (2 events)"

# ---- validate: invalid events, one precise message each, exit 2
check_invalid() {
    run "validate $1" 2 "$OFE" ce validate "$1"
    same_text "validate $1 stderr" "$tmp/err" "$2"
    [ -s "$tmp/out" ] && fail "validate $1: unexpected stdout $(cat "$tmp/out")"
}
check_invalid bad-specversion.json \
    "bad-specversion.json: attribute 'specversion': \"0.3\" is not supported (this implementation speaks CloudEvents \"1.0\")"
check_invalid bad-time.json \
    "bad-time.json: attribute 'time': \"2018-04-31T10:00:00Z\" is not an RFC 3339 timestamp: day out of range for the month"
check_invalid missing-id.json "missing-id.json: missing required attribute 'id'"
check_invalid bad-syntax.json "bad-syntax.json: invalid JSON at line 3, column 2: expected ',' or '}'"
check_invalid data-and-base64.json \
    "data-and-base64.json: 'data' and 'data_base64' are exclusive: an event has one or the other"
run "validate stdin invalid" 2 "$OFE" ce validate - <missing-id.json
same_text "validate stdin invalid stderr" "$tmp/err" "<stdin>: missing required attribute 'id'"

# every bad event of a batch is reported
run "validate bad batch" 2 "$OFE" ce validate bad-batch.json
cat >"$tmp/want" <<'WANT'
bad-batch.json: event [1]: attribute name "Upper": character "U" at position 1 is not allowed (names use a-z and 0-9 only)
bad-batch.json: event [3]: attribute 'count': "2147483648" is out of the Integer range (-2147483648 to 2147483647)
bad-batch.json: 2 of 4 events invalid
WANT
cmp -s "$tmp/err" "$tmp/want" || fail "validate bad batch stderr: $(cat "$tmp/err")"

# ---- usage and I/O errors
run "validate missing file" 1 "$OFE" ce validate no-such-file.json
grep -q "no-such-file.json: No such file or directory" "$tmp/err" || fail "missing file message: $(cat "$tmp/err")"
run "validate two files" 2 "$OFE" ce validate a.json b.json
run "validate bad option" 2 "$OFE" ce validate --bogus
run "ce no args" 2 "$OFE" ce
run "ce unknown" 2 "$OFE" ce frobnicate
grep -q "unknown subcommand 'frobnicate'" "$tmp/err" || fail "unknown subcommand message"
run "ce help" 0 "$OFE" ce --help
grep -q "ofe ce validate" "$tmp/out" || fail "help text"
run "ofe help lists ce" 0 "$OFE" --help
grep -q "^  ce " "$tmp/out" || fail "ofe --help does not list ce"

# ---- http: the exact request bytes
run "http binary unicode" 0 "$OFE" ce http unicode.json
cmp -s "$tmp/out" unicode.http-binary || fail "http binary unicode output differs"
grep -q "^ce-subject: Euro%20%E2%82%AC%20%F0%9F%98%80$(printf '\r')\$" "$tmp/out" ||
    fail "http binary: subject not percent-encoded as the spec example"
run "http structured unicode" 0 "$OFE" ce http --mode structured unicode.json
cmp -s "$tmp/out" unicode.http-structured || fail "http structured unicode output differs"
run "http --mode=binary" 0 "$OFE" ce http --mode=binary spec-json-data.json
cmp -s "$tmp/out" spec-json-data.http-binary || fail "http binary json output differs"
run "http batch" 0 "$OFE" ce http --url http://fn.example:8080/hook spec-batch.json
cmp -s "$tmp/out" spec-batch.http || fail "http batch output differs"
head -1 "$tmp/out" | grep -q "^POST /hook HTTP/1.1" || fail "http --url request line"
run "http stdin" 0 "$OFE" ce http - <unicode.json
cmp -s "$tmp/out" unicode.http-binary || fail "http from stdin differs"

# binary data goes out byte for byte, and Content-Length counts it
run "http binary data" 0 "$OFE" ce http spec-binary-data.json
printf '\200\001\000\001\000\000\000\004ping\000\000\000\000\000' >"$tmp/data"
tail -c 17 "$tmp/out" | cmp -s - "$tmp/data" || fail "http binary body bytes differ"
grep -q "^Content-Length: 17$(printf '\r')\$" "$tmp/out" || fail "http binary Content-Length"
grep -q "^Content-Type: application/vnd.apache.thrift.binary" "$tmp/out" || fail "binary Content-Type"

# the structured body is itself a valid event
run "http structured json" 0 "$OFE" ce http --mode structured spec-json-data.json
sed -n '/^\r$/,$p' "$tmp/out" | tail -n +2 >"$tmp/body.json"
run "validate structured body" 0 "$OFE" ce validate "$tmp/body.json"
same_text "validate structured body stdout" "$tmp/out" "ok"

# errors
run "http invalid event" 2 "$OFE" ce http missing-id.json
same_text "http invalid event stderr" "$tmp/err" "missing-id.json: missing required attribute 'id'"
[ -s "$tmp/out" ] && fail "http invalid event: output on stdout"
run "http bad batch" 2 "$OFE" ce http bad-batch.json
grep -q "^bad-batch.json: event \[1\]: attribute name \"Upper\"" "$tmp/err" || fail "http bad batch message: $(cat "$tmp/err")"
run "http bad mode" 2 "$OFE" ce http --mode foo unicode.json
same_text "http bad mode stderr" "$tmp/err" "ofe ce http: --mode takes binary or structured"
run "http bad url" 2 "$OFE" ce http --url ftp://x unicode.json

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all ofe ce checks passed"
