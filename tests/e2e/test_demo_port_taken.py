"""scripts/demo when a port it chose is taken before the daemon binds it
(another program got it in between): the run starts over on other ports
and still delivers. The port handed to ofe-eventbus's HTTP listener on the
first try is held open here, so that start fails for real. Twice: once as
it comes, and once with the demo told that every daemon is listening at
once, so the bus's exit is seen only later, in the running loop (what
happens when its RESP listener is up before the HTTP bind fails).

Usage: test_demo_port_taken.py BUILD_DIR"""
import os
import socket
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import demo  # noqa: E402

held = socket.socket()
held.bind(("127.0.0.1", 0))
held.listen(1)
taken = held.getsockname()[1]
real_free_port = demo.free_port
calls = [0]


def free_port():
    # the second port of a run is the bus's HTTP port ("bushttp")
    calls[0] += 1
    return taken if calls[0] == 2 else real_free_port()


demo.free_port = free_port
build = sys.argv[1]
real_wait_port = demo.wait_port
for early_ready in (False, True):
    calls[0] = 0
    demo.wait_port = (lambda port, timeout, proc=None: True) if early_ready else real_wait_port
    sys.argv = ["demo", "--sample", "eventbus-and-trigger", "--build-dir", build,
                "--duration", "6", "--interval", "3", "--expect", "1"]
    demo.main()  # exits 1 when nothing was delivered
    if calls[0] <= 6:
        sys.exit("the run did not start over (%d ports chosen)" % calls[0])
    print("port taken (%s): started over, events delivered: ok"
          % ("seen while running" if early_ready else "as it comes"))
