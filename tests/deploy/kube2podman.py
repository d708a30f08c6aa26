#!/usr/bin/env python3
"""kube2podman.py - the rendered cluster overlay, as podman kube play runs it.

    kube2podman.py RENDERED.yaml EXTRA.yaml > PLAY.yaml

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
    are dropped (nothing in podman acts on them); namespaces too.
EXTRA.yaml holds what the operator would make (the allow-list ConfigMap).
"""
import copy
import re
import sys

import yaml

DROP = {"Service", "PodDisruptionBudget", "ScaledObject", "TriggerAuthentication"}


def pods(obj, name_one):
    tmpl = obj["spec"]["template"]
    n = obj["spec"].get("replicas", 1)
    names = [obj["metadata"]["name"]] if n == 1 and name_one else [
        "%s-%d" % (obj["metadata"]["name"], i) for i in range(n)]
    for name in names:
        spec = copy.deepcopy(tmpl["spec"])
        spec["hostname"] = name
        yield {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": dict(tmpl["metadata"].get("labels", {}))},
               "spec": spec}


def main():
    out = []
    docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
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
            out.extend(pods(d, name_one=False))
        elif kind == "Deployment":
            out.extend(pods(d, name_one=True))
        else:
            sys.exit("kube2podman: no rule for %s" % kind)
    # ConfigMaps first: the pods that mount them come after
    out.sort(key=lambda o: o["kind"] != "ConfigMap")
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


main()
