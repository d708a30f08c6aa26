#!/usr/bin/env python3
"""kube2podman.py - the rendered cluster overlay, as podman kube play runs it.

    kube2podman.py VOLDIR RENDERED.yaml EXTRA.yaml > PLAY.yaml

podman 4.3's kube play runs Pods, Deployments and ConfigMaps, not
StatefulSets, Services, PodDisruptionBudgets or KEDA's objects, and it has
no cluster DNS: a pod is found by its own name on the network. So, and only
so, the objects change on the way:
  - each StatefulSet becomes its replicas as Pods named NAME-0, NAME-1, ...
    (the names the StatefulSet gives them), each Deployment its replicas as
    Pods named NAME (one) or NAME-0, NAME-1...; the pod spec is the same;
  - the headless Service's per-pod names (sluice-broker-0.sluice-broker)
    become the pod names (sluice-broker-0) in the ConfigMaps, and the
    Redis Service's name is the Redis pod's name already;
  - Services, PodDisruptionBudgets, ScaledObjects and TriggerAuthentications
    are dropped (nothing in podman acts on them); namespaces too;
  - containers lose their ports and probes: podman 4.3 publishes every
    containerPort on the host (the pods talk over their own network, and
    nothing here may take the host's port 25), and runs probes from systemd
    timers, which this machine has not. validate.mjs checks both as written;
  - an emptyDir becomes a directory of its own under VOLDIR (podman 4.3
    makes one named volume per emptyDir name, shared by every pod that
    uses the name: two Postfix pods would share a spool).
EXTRA.yaml holds what the operator would make (the allow-list ConfigMap).
"""
import copy
import os
import re
import sys

import yaml

DROP = {"Service", "PodDisruptionBudget", "ScaledObject", "TriggerAuthentication"}


def pods(obj, name_one, voldir):
    tmpl = obj["spec"]["template"]
    n = obj["spec"].get("replicas", 1)
    names = [obj["metadata"]["name"]] if n == 1 and name_one else [
        "%s-%d" % (obj["metadata"]["name"], i) for i in range(n)]
    for name in names:
        spec = copy.deepcopy(tmpl["spec"])
        spec["hostname"] = name
        for c in spec["containers"]:
            for k in ("ports", "livenessProbe", "readinessProbe", "startupProbe"):
                c.pop(k, None)
        for v in spec.get("volumes", []):
            if "emptyDir" in v:
                path = os.path.join(voldir, name, v["name"])
                os.makedirs(path, exist_ok=True)
                os.chmod(path, 0o1777)
                del v["emptyDir"]
                v["hostPath"] = {"path": path, "type": "Directory"}
        yield {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": dict(tmpl["metadata"].get("labels", {}))},
               "spec": spec}


def main():
    out = []
    voldir = os.path.abspath(sys.argv[1])
    docs = [d for f in sys.argv[2:] for d in yaml.safe_load_all(open(f)) if d]
    for d in docs:
        kind = d["kind"]
        d["metadata"].pop("namespace", None)
        if kind in DROP:
            continue
        if kind == "ConfigMap":
            for k, v in (d.get("data") or {}).items():
                d["data"][k] = re.sub(r"\b(sluice-broker-\d+)\.sluice-broker\b", r"\1", v)
            out.append(d)
        elif kind == "StatefulSet":
            out.extend(pods(d, False, voldir))
        elif kind == "Deployment":
            out.extend(pods(d, True, voldir))
        else:
            sys.exit("kube2podman: no rule for %s" % kind)
    # ConfigMaps first: the pods that mount them come after
    out.sort(key=lambda o: o["kind"] != "ConfigMap")
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


main()
