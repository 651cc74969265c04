#!/usr/bin/env python3
"""Prints a free TCP port on 127.0.0.1 for a shell test, chosen the way
tests/lib/servers.c and scripts/demo.py choose theirs: below the kernel's
ephemeral range and reserved with an flock in $TMPDIR/ofe-test-ports-UID.

Usage: free_port.py [--hold PID]
With --hold, a detached process keeps the reservation until PID (the
calling shell, $$) has exited, so `P=$(free_port.py --hold $$)` works in
command substitution."""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import demo  # noqa: E402


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main():
    hold = None
    if sys.argv[1:2] == ["--hold"] and len(sys.argv) == 3:
        hold = int(sys.argv[2])
    elif len(sys.argv) != 1:
        sys.exit("usage: free_port.py [--hold PID]")
    port = demo.free_port()
    print(port, flush=True)
    if hold is None:
        return
    if os.fork() != 0:
        os._exit(0)
    # the holder: off the caller's pipes (command substitution waits for
    # them to close) and out of its process group
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    while alive(hold):
        time.sleep(0.5)


main()
