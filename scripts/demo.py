#!/usr/bin/env python3
"""Runs an ofevents pipeline from configs/samples/<NAME> on free loopback
ports and shows what flows. Started by scripts/demo (which installs and
builds first); see `scripts/demo --help`.

Processes: ofe-eventbus (when the sample has a bus.yaml), ofe-kafka-mock
(when a document reads ${OFE_KAFKA_BROKERS}), the sample function
(`ofe sink`), ofe-trigger (trigger.yaml) and ofe-eventsource
(eventsource.yaml). Each runs in its own session, so Ctrl-C reaches only
this runner, which then stops them in order (SIGTERM: they drain) and
leaves no process behind."""
import argparse
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


PORT_FLOOR = 20000
_port_locks = []  # reservations held until this process exits


def _port_range():
    """Where to look for free ports: below the kernel's ephemeral range, so
    that no outgoing connection takes a port between our check and the
    daemon's bind (None when there is no room below or above it)."""
    lo, hi = 32768, 60999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split()[:2])
    except (OSError, ValueError):
        pass
    if lo - 1 - PORT_FLOOR >= 1000:
        return PORT_FLOOR, lo - 1
    if 65535 - (hi + 1) >= 1000:
        return hi + 1, 65535
    return None


def _bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A free port on 127.0.0.1, reserved with an flock on
    $TMPDIR/ofe-test-ports-UID/PORT for as long as this process runs: the
    tests' servers (tests/lib/servers.c, tests/lib/free_port.py) keep to the
    same convention, so runs side by side never pick the same port."""
    rng = _port_range()
    if rng is not None:
        d = os.path.join(tempfile.gettempdir(), "ofe-test-ports-%d" % os.getuid())
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            for _ in range(200):
                port = random.randint(*rng)
                f = open(os.path.join(d, str(port)), "a")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    f.close()
                    continue
                if _bindable(port):
                    _port_locks.append(f)
                    return port
                f.close()
        except OSError:
            pass
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout, proc=None):
    """Whether something listens on port within timeout (False at once
    when proc, the process that should, has exited)."""
    end = time.time() + timeout
    while time.time() < end and (proc is None or proc.poll() is None):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def http_get(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


def metrics(port):
    """Sums each metric name over its label sets (histograms: _count)."""
    st, text = http_get(f"http://127.0.0.1:{port}/metrics")
    out = {}
    if st != 200:
        return out
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + v
        if m.group(2):
            key = m.group(1) + m.group(2)
            out[key] = v
    return out


class PortTaken(Exception):
    """A daemon could not bind a port chosen free a moment before (another
    program took it meanwhile): the run starts over on other ports."""


class Runner:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.sample = os.path.join(ROOT, "configs", "samples", args.sample)
        self.work = tempfile.mkdtemp(prefix="ofe-demo-")
        self.procs = []  # (name, Popen, log path)
        self.env = dict(os.environ)
        self.stopping = False

    def bin(self, rel):
        p = os.path.join(self.build, rel)
        if not os.access(p, os.X_OK):
            sys.exit(f"demo: {p} is missing: build first (scripts/demo does)")
        return p

    def start(self, name, argv, wait_for=None):
        log = os.path.join(self.work, name + ".log")
        f = open(log, "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=self.env, start_new_session=True)
        f.close()
        self.procs.append((name, p, log))
        if wait_for and not wait_port(wait_for, 15, p):
            self.down(name, log, f"{name} did not start listening on port {wait_for}")
        return p

    def down(self, name, log, why):
        """A daemon that is not up: when it could not bind a port (at
        start-up, possibly after its first listener was already up), the
        run starts over on other ports; otherwise the demo fails."""
        with open(log, errors="replace") as f:
            taken = "Address already in use" in f.read()
        if taken:
            self.stop()
            raise PortTaken(f"{name}: a port chosen for it was taken meanwhile")
        self.fail(why, log)

    def fail(self, why, log=None):
        print(f"\ndemo: {why}", file=sys.stderr)
        if log and os.path.exists(log):
            print(f"--- last lines of {log}:", file=sys.stderr)
            with open(log, errors="replace") as f:
                print("".join(f.readlines()[-20:]), file=sys.stderr)
        self.stop()
        sys.exit(1)

    def stop(self):
        if self.stopping:
            return
        self.stopping = True
        # Sources first, the bus last: in-flight events drain downstream.
        order = ["eventsource", "feeder", "trigger", "function", "kafka", "eventbus"]
        for name in order:
            for n, p, _ in self.procs:
                if n == name and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
        for n, p, _ in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def render(self, name):
        src = os.path.join(self.sample, name)
        if not os.path.exists(src):
            return None
        with open(src) as f:
            text = f.read()
        dst = os.path.join(self.work, name)
        with open(dst, "w") as f:
            f.write(text)
        return dst

    def sample_text(self):
        t = ""
        for n in ("bus.yaml", "eventsource.yaml", "trigger.yaml"):
            p = os.path.join(self.sample, n)
            if os.path.exists(p):
                t += open(p).read()
        return t

    def run(self):
        if not os.path.isdir(self.sample):
            names = sorted(os.listdir(os.path.join(ROOT, "configs", "samples")))
            sys.exit(f"demo: no sample \"{self.args.sample}\" (have: "
                     f"{', '.join(n for n in names if not n.endswith('.md'))})")
        text = self.sample_text()
        ports = {"bus": free_port(), "bushttp": free_port(), "webhook": free_port(),
                 "function": free_port(), "es": free_port(), "trigger": free_port()}
        self.env.update({
            "OFE_BUS_ADDR": f"127.0.0.1:{ports['bus']}",
            "OFE_WEBHOOK_PORT": str(ports["webhook"]),
            "OFE_FUNCTION_URL": f"http://127.0.0.1:{ports['function']}",
        })
        bus = self.render("bus.yaml")
        es = self.render("eventsource.yaml")
        trig = self.render("trigger.yaml")
        print(f"ofevents demo: sample \"{self.args.sample}\" (configs/samples/{self.args.sample})")
        print(f"working directory {self.work} (logs: *.log)\n")

        if bus:
            self.start("eventbus", [self.bin("eventbus/ofe-eventbus"), "--port", str(ports["bus"]),
                                    "--http-port", str(ports["bushttp"]), "--data-dir",
                                    os.path.join(self.work, "bus-data"), "--fsync", "everysec"],
                       wait_for=ports["bus"])
            print(f"  ofe-eventbus       127.0.0.1:{ports['bus']} (metrics on :{ports['bushttp']})")
        if "OFE_KAFKA_BROKERS" in text:
            bf = os.path.join(self.work, "kafka.bootstrap")
            self.start("kafka", [self.bin("tests/ofe-kafka-mock"), "--topic", "events-sample:1",
                                 "--bootstrap-file", bf])
            end = time.time() + 15
            while time.time() < end and not (os.path.exists(bf) and open(bf).read().strip()):
                time.sleep(0.05)
            if not os.path.exists(bf):
                self.fail("the Kafka test broker did not start")
            self.env["OFE_KAFKA_BROKERS"] = open(bf).read().strip()
            print(f"  Kafka test broker  {self.env['OFE_KAFKA_BROKERS']} (topic events-sample)")
        sink_out = os.path.join(self.work, "function.jsonl")
        self.start("function", [self.bin("cli/ofe"), "sink", "--port", str(ports["function"]),
                                "--json", "--output", sink_out], wait_for=ports["function"])
        print(f"  sample function    http://127.0.0.1:{ports['function']}/ (ofe sink)")
        configs = [c for c in (bus,) if c]
        if trig:
            self.start("trigger", [self.bin("trigger/ofe-trigger"), *sum((["--config", c] for c in configs + [trig]), []),
                                   "--http-port", str(ports["trigger"]), "--instance", "demo-1"],
                       wait_for=ports["trigger"])
            print(f"  ofe-trigger        metrics on :{ports['trigger']}")
        if es:
            self.start("eventsource", [self.bin("eventsource/ofe-eventsource"), *sum((["--config", c] for c in configs + [es]), []),
                                       "--http-port", str(ports["es"]), "--instance", "demo-1"],
                       wait_for=ports["es"])
            print(f"  ofe-eventsource    metrics on :{ports['es']}")
        has_webhook = "webhook:" in open(es).read() if es else False
        endpoint = None
        if has_webhook:
            m = re.search(r"endpoint:\s*(\S+)", open(es).read())
            endpoint = f"http://127.0.0.1:{ports['webhook']}{m.group(1) if m else '/'}"
            if not wait_port(ports["webhook"], 15):
                self.down("eventsource", os.path.join(self.work, "eventsource.log"),
                          "the webhook source did not start")
            print("\nSend your own event (in another terminal):")
            print(f"  curl -X POST -H 'Content-Type: application/json' -d '{{\"order\": 42}}' {endpoint}")
            print("  curl -X POST -H 'ce-specversion: 1.0' -H 'ce-id: my-1' -H 'ce-source: /me' \\")
            print("       -H 'ce-type: com.example.order' -H 'ce-size: big' \\")
            print(f"       -H 'Content-Type: application/json' -d '{{\"order\": 43}}' {endpoint}")
        print("\nPress Ctrl-C to stop.\n")

        kafka_bus = None
        if "OFE_KAFKA_BROKERS" in self.env:
            kafka_bus = os.path.join(self.work, "kafka-feed.yaml")
            with open(kafka_bus, "w") as f:
                f.write("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: feed}\n"
                        "spec:\n  type: pubsub.kafka\n  version: v1\n  metadata:\n"
                        f"  - {{name: brokers, value: \"{self.env['OFE_KAFKA_BROKERS']}\"}}\n"
                        "  - {name: authType, value: none}\n")

        stages = [
            ("source events in", ports["es"], "ofe_eventsource_events_received_total"),
            ("published to bus", ports["es"], "ofe_eventsource_events_delivered_total"),
            ("trigger bus reads", ports["trigger"], "ofe_trigger_acked_total"),
            ("trigger deliveries", ports["trigger"], "ofe_trigger_delivered_total"),
        ]
        if not trig:
            stages = stages[:2]
            stages[1] = ("delivered to sink", ports["es"], "ofe_eventsource_events_delivered_total")
        last = {}
        t0 = time.time()
        last_t = t0
        next_feed = t0 + 1.5
        nfeed = 0
        sent_demo = False
        pos = 0
        seen = 0
        while True:
            now = time.time()
            if self.args.duration and now - t0 >= self.args.duration:
                break
            for n, p, log in self.procs:
                if p.poll() is not None:
                    self.down(n, log, f"{n} exited with status {p.returncode}")
            if kafka_bus and now >= next_feed:
                nfeed += 1
                ev = json.dumps({"specversion": "1.0", "id": f"kafka-{nfeed}", "source": "/demo/feeder",
                                 "type": "com.example.sample", "datacontenttype": "application/json",
                                 "data": {"n": nfeed}})
                subprocess.run([self.bin("cli/ofe"), "publish", "--bus", kafka_bus, "--topic", "events-sample"],
                               input=ev.encode(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=20)
                next_feed = now + 2
            if endpoint and not sent_demo and now - t0 > 3:
                # one order of our own, so the condition subscriber has something to show
                req = urllib.request.Request(endpoint, data=b'{"order": 1, "from": "the demo"}',
                                             headers={"Content-Type": "application/json"}, method="POST")
                try:
                    urllib.request.urlopen(req, timeout=5).read()
                    print("demo: sent one order to the webhook to get things going\n")
                except OSError as e:
                    print(f"demo: could not post to the webhook: {e}")
                sent_demo = True
            # new deliveries at the function, in short form
            if os.path.exists(sink_out):
                with open(sink_out) as f:
                    f.seek(pos)
                    for line in f:
                        if not line.endswith("\n"):
                            break
                        pos += len(line.encode())
                        try:
                            r = json.loads(line)
                        except ValueError:
                            continue
                        e = r.get("event", {})
                        seen += 1
                        data = json.dumps(e.get("data")) if "data" in e else e.get("data_base64", "")
                        if len(data) > 60:
                            data = data[:57] + "..."
                        print(f"  -> {r.get('path', '/'):<28} {e.get('type', '?'):<32} id={e.get('id')} "
                              f"source={e.get('source')}  {data}")
            if now - last_t >= self.args.interval:
                dt = now - last_t
                parts = []
                for label, port, name in stages:
                    v = metrics(port).get(name, 0.0)
                    rate = (v - last.get(label, 0.0)) / dt
                    last[label] = v
                    parts.append(f"{label} {int(v)} ({rate:.1f}/s)")
                parts.append(f"function received {seen}")
                print(f"[{int(now - t0):4d}s] " + " | ".join(parts))
                last_t = now
            time.sleep(0.2)
        return seen


def main():
    ap = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", default="demo", help="sample folder under configs/samples (default demo)")
    ap.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: at Ctrl-C)")
    ap.add_argument("--interval", type=float, default=5, help="seconds between rate lines (default 5)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"), help="build tree (default build)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory and logs")
    ap.add_argument("--expect", type=int, default=0,
                    help="exit 1 unless the function received at least this many events (tests)")
    args = ap.parse_args()
    cur = [None]

    def on_signal(sig, frame):
        print("\ndemo: stopping (draining in-flight events)...")
        if cur[0]:
            cur[0].stop()
        print("demo: stopped; no process left behind.")
        sys.exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for attempt in range(3):
        r = cur[0] = Runner(args)
        try:
            seen = r.run()
            break
        except PortTaken as e:
            if attempt == 2:
                sys.exit(f"demo: {e} (three times)")
            print(f"demo: {e}; starting over on other ports", file=sys.stderr)
        except SystemExit:
            raise
        except BaseException:
            r.stop()
            raise
    r.stop()
    print(f"demo: stopped after {args.duration:g} s; the function received {seen} event(s).")
    if args.expect and seen < args.expect:
        print(f"demo: expected at least {args.expect}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
