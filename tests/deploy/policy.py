"""Policy checks on Kubernetes objects (dicts as `helm template` renders them): pure functions returning what is
wrong, one readable line per finding, so that a test can show both that the chart passes and that a bad object
fails.

- `pod_findings`: Pod Security `restricted` and more: non-root, RuntimeDefault seccomp, read-only root filesystem,
  no privilege escalation, every capability dropped, no host namespaces or hostPath, requests and limits on every
  container.
- `namespace_findings`: every namespace the objects create or use has Pod Security `restricted` enforced (when the
  objects create it) and a default-deny NetworkPolicy for both directions.
- `secret_findings`: no secret value anywhere: no Secret objects, no secret-looking key with a literal value, no
  value that looks like a credential (private key, cloud key, token, password in a URL).
- `dockerfile_findings`: the image is multi-stage, pinned by constraints.txt, non-root by number, without secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
RESOURCE_KEYS = ("cpu", "memory")

# Keys whose value would be a secret if written literally.
SECRET_KEY = re.compile(
    r"(passw(or)?d|passwd|secret|token|credential|(api|access|private|signing|digest|encryption)[_-]?key|[_-]key$)",
    re.I,
)
# Keys that hold the name of (or a reference to) a secret, never its value.
REFERENCE_KEY = re.compile(r"(name|names|ref|secretkey|key_?ref|namespace)$", re.I)
# Values that are credentials whatever the key.
SECRET_VALUE = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."), "a JWT"),
    (re.compile(r"\bhv[sb]\.[A-Za-z0-9_-]{20,}"), "a Vault token"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "a GitHub token"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "a password in a URL"),
]


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod spec(s) of a workload object (none for anything else)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind in WORKLOAD_KINDS:
        yield (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        yield ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"


def pod_findings(obj: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for pod in pod_specs(obj):
        where = describe(obj)
        psc = pod.get("securityContext") or {}
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(host):
                found.append(f"{where}: {host} is on")
        for volume in pod.get("volumes") or []:
            if "hostPath" in volume:
                found.append(f"{where}: volume {volume.get('name')} is a hostPath")
        containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
        if not containers:
            found.append(f"{where}: no containers")
        for c in containers:
            at = f"{where} container {c.get('name')}"
            csc = c.get("securityContext") or {}
            non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            if non_root is not True:
                found.append(f"{at}: runAsNonRoot is not true")
            if csc.get("runAsUser", psc.get("runAsUser")) == 0:
                found.append(f"{at}: runs as uid 0")
            seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                found.append(f"{at}: seccompProfile is {seccomp or 'unset'}, not RuntimeDefault")
            if csc.get("readOnlyRootFilesystem") is not True:
                found.append(f"{at}: root filesystem is writable (readOnlyRootFilesystem is not true)")
            if csc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{at}: allowPrivilegeEscalation is not false")
            if csc.get("privileged"):
                found.append(f"{at}: privileged")
            caps = csc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                found.append(f"{at}: capabilities are not all dropped")
            if caps.get("add"):
                found.append(f"{at}: adds capabilities {caps['add']}")
            resources = c.get("resources") or {}
            for kind in ("requests", "limits"):
                missing = [k for k in RESOURCE_KEYS if not (resources.get(kind) or {}).get(k)]
                if missing:
                    found.append(f"{at}: no {kind} for {', '.join(missing)}")
    return found


def namespaces_used(objects: Iterable[dict[str, Any]]) -> set[str]:
    used = set()
    for obj in objects:
        if obj.get("kind") == "Namespace":
            used.add(obj["metadata"]["name"])
        elif ns := (obj.get("metadata") or {}).get("namespace"):
            used.add(ns)
    return used


def is_default_deny(obj: dict[str, Any]) -> bool:
    """A NetworkPolicy selecting every pod, for both directions, allowing nothing."""
    if obj.get("kind") != "NetworkPolicy":
        return False
    spec = obj.get("spec") or {}
    return (
        spec.get("podSelector") in ({}, None)
        and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or [])
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def namespace_findings(objects: list[dict[str, Any]]) -> list[str]:
    found = []
    denied = {(o.get("metadata") or {}).get("namespace") for o in objects if is_default_deny(o)}
    for ns in sorted(namespaces_used(objects)):
        if ns not in denied:
            found.append(
                f"namespace {ns}: no default-deny NetworkPolicy (podSelector {{}}, Ingress and Egress, no rules)"
            )
    for obj in objects:
        if obj.get("kind") != "Namespace":
            continue
        labels = obj["metadata"].get("labels") or {}
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            found.append(f"namespace {obj['metadata']['name']}: Pod Security `restricted` is not enforced")
    return found


def _walk(value: Any, path: str = "", key: str | None = None) -> Iterator[tuple[str, str | None, Any]]:
    """(path, key, value) of every scalar under value; key is the mapping key that holds it (None in lists)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}", str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]", None)
    else:
        yield path, key, value


def _env_findings(obj: dict[str, Any], where: str) -> Iterator[str]:
    """`env: [{name: PGPASSWORD, value: …}]`: a literal value for a secret-looking variable."""
    for pod in pod_specs(obj):
        for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            for env in c.get("env") or []:
                if SECRET_KEY.search(str(env.get("name", ""))) and env.get("value") not in (None, ""):
                    yield f"{where}: env {env['name']} of container {c.get('name')} has a literal value"


def secret_findings(obj: Any, where: str = "") -> list[str]:
    """Secret values written into obj (a rendered object, or a values file)."""
    where = where or (describe(obj) if isinstance(obj, dict) else "document")
    found = []
    if isinstance(obj, dict) and obj.get("kind") == "Secret":
        found.append(f"{where}: a Secret object (secrets come from ExternalSecrets, never from the chart)")
    if isinstance(obj, dict):
        found.extend(_env_findings(obj, where))
    for path, key, value in _walk(obj):
        if value is None or value == "" or isinstance(value, bool):
            continue
        text = str(value)
        if key is not None and SECRET_KEY.search(key) and not REFERENCE_KEY.search(key):
            found.append(f"{where}: {path.lstrip('.')} looks like a secret with a literal value")
        for pattern, what in SECRET_VALUE:
            if pattern.search(text):
                found.append(f"{where}: {path.lstrip('.')} holds {what}")
    return found


def dockerfile_findings(text: str) -> list[str]:
    """What the Dockerfile gets wrong: single stage, unpinned dependencies or base, root or named user, secrets."""
    found = []
    logical = re.sub(r"\\\n", " ", text)
    instructions = [line.strip() for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    froms = [i for i in instructions if i.upper().startswith("FROM ")]
    if len(froms) < 2:
        found.append("not multi-stage (fewer than two FROM)")
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", logical, re.M))
    for f in froms:
        image = f.split()[1]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
        if not re.search(r"[:@]", image) or image.endswith(":latest"):
            found.append(f"base image {image} is not pinned by tag or digest")
    installs = [i for i in instructions if re.search(r"\bpip install\b", i)]
    if not installs or any("-c constraints.txt" not in i and "--constraint constraints.txt" not in i for i in installs):
        found.append("a pip install without -c constraints.txt")
    users = [i.split(None, 1)[1] for i in instructions if i.upper().startswith("USER ")]
    if not users:
        found.append("no USER: the image runs as root")
    else:
        uid = users[-1].split(":")[0]
        if not uid.isdigit():
            found.append(f"USER {users[-1]} is not numeric (runAsNonRoot cannot verify a name)")
        elif int(uid) == 0:
            found.append("USER is root (uid 0)")
    for instruction in instructions:
        keyword = instruction.split(None, 1)[0].upper()
        if keyword not in ("ENV", "ARG", "LABEL"):
            continue
        for name, value in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", instruction):
            if SECRET_KEY.search(name) and value.strip('"'):
                found.append(
                    f"{keyword} {name} has a literal value (a secret must come from the environment at run time)"
                )
    for pattern, what in SECRET_VALUE:
        if pattern.search(text):
            found.append(f"the Dockerfile holds {what}")
    return found
