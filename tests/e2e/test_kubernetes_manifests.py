#!/usr/bin/env python3
"""Checks configs/kubernetes: every file is valid YAML of Kubernetes objects
with the fields the API server requires, workloads have the probes and
scrape annotations the product promises, Services select a workload, every
config file a container names is in the ConfigMap, and the YAML documents
in each ConfigMap pass `ofe validate --strict` (with the other ConfigMaps'
files where one replaces part of another)."""
import glob
import os
import subprocess
import sys
import tempfile

import yaml

src = os.environ["OFE_SOURCE_DIR"]
ofe = os.path.join(os.environ["OFE_BUILD_DIR"], "cli", "ofe")
errors = []


def err(msg):
    errors.append(msg)
    print("FAIL:", msg)


objs = []
for path in sorted(glob.glob(os.path.join(src, "configs/kubernetes/*.yaml"))):
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except yaml.YAMLError as e:
        err(f"{path}: not valid YAML: {e}")
        continue
    for d in docs:
        name = os.path.basename(path)
        for f in ("apiVersion", "kind", "metadata"):
            if f not in d:
                err(f"{name}: a document lacks {f}")
        if "name" not in d.get("metadata", {}):
            err(f"{name}: {d.get('kind')} without metadata.name")
        objs.append((name, d))

workloads = [(n, d) for n, d in objs if d["kind"] in ("Deployment", "StatefulSet")]
configmaps = [(n, d) for n, d in objs if d["kind"] == "ConfigMap"]
services = [(n, d) for n, d in objs if d["kind"] == "Service"]
if not workloads or not configmaps or not services:
    err("expected Deployments/StatefulSets, Services and ConfigMaps")

for n, d in workloads:
    spec = d["spec"]
    tmpl = spec["template"]
    if spec["selector"]["matchLabels"].items() - tmpl["metadata"]["labels"].items():
        err(f"{n}: selector does not match the pod labels")
    if tmpl["metadata"].get("annotations", {}).get("prometheus.io/scrape") != "true":
        err(f"{n}: no Prometheus scrape annotation")
    for c in tmpl["spec"]["containers"]:
        if not c.get("image"):
            err(f"{n}: container {c.get('name')} has no image")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            err(f"{n}: liveness probe is not /healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            err(f"{n}: readiness probe is not /readyz")
        cmd = c.get("command", [])
        files = [cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == "--config"]
        for f in files:
            key = os.path.basename(f)
            if not any(key in cm["data"] for _, cm in configmaps):
                err(f"{n}: --config {f} is in no ConfigMap")
    if d["kind"] == "StatefulSet" and not spec.get("volumeClaimTemplates"):
        err(f"{n}: the broker StatefulSet has no volume")

for n, s in services:
    sel = s["spec"]["selector"]
    if not any(sel.items() <= w["spec"]["template"]["metadata"]["labels"].items() for _, w in workloads):
        err(f"{n}: Service {s['metadata']['name']} selects no workload")

# The base ConfigMap, then each replacement of part of it.
base = next((cm for n, cm in configmaps if n == "config.yaml"), None)
if base is None:
    err("config.yaml: no base ConfigMap")
else:
    for n, cm in configmaps:
        files = dict(base["data"])
        files.update(cm["data"])
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for k, v in files.items():
                p = os.path.join(tmp, k)
                open(p, "w").write(v)
                paths.append(p)
            r = subprocess.run([ofe, "validate", "--strict"] + paths, capture_output=True, text=True)
            if r.returncode != 0:
                err(f"{n}: ofe validate failed:\n{r.stdout}{r.stderr}")
            else:
                print(f"ok   {n}: {len(paths)} config files validate")

print(f"{len(objs)} objects checked, {len(errors)} problem(s)")
sys.exit(1 if errors else 0)
