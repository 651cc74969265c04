#!/bin/sh
# Checks the systemd units in configs/systemd with `systemd-analyze verify`,
# pointed at the binaries of this build. verify exits 0 on many problems and
# only prints them, so any output is a failure. A deliberately broken copy
# must produce output, or this test could not fail.
set -u
src=${OFE_SOURCE_DIR:?}/configs/systemd
build=${OFE_BUILD_DIR:?}
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: systemd-analyze not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for u in "$src"/*.service; do
    n=$(basename "$u")
    sed -e "s#/usr/local/bin/ofe-eventbus#$build/eventbus/ofe-eventbus#g" \
        -e "s#/usr/local/bin/ofe-eventsource#$build/eventsource/ofe-eventsource#g" \
        -e "s#/usr/local/bin/ofe-trigger#$build/trigger/ofe-trigger#g" "$u" >"$tmp/$n"
    out=$(systemd-analyze verify --man=no "$tmp/$n" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        echo "FAIL $n (rc=$rc):"; echo "$out"; fail=1
    else
        echo "ok   $n"
    fi
done
# negative control
sed -e 's/^NoNewPrivileges=yes/NoNewPrivileges=maybe/' "$tmp/ofe-trigger.service" >"$tmp/broken.service"
out=$(systemd-analyze verify --man=no "$tmp/broken.service" 2>&1)
if [ -z "$out" ]; then
    echo "FAIL: a broken unit passed verification: this test cannot detect errors"; fail=1
fi
exit $fail
