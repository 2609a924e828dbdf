"""The deploy artefacts: helm/market-media rendered with every values file, helm/dagster-values*.yaml (the official
Dagster chart's values) and the Dockerfile.

- `helm lint --strict` and `helm template` for every values file (helm from scripts/services/helm.sh: MM_TEST_HELM,
  else its cache path).
- Every rendered object validated offline against the Kubernetes API schemas of kubernetes-validate (strict: unknown
  fields are errors). Custom resources (ExternalSecret, ClusterSecretStore, Istio PeerAuthentication) have no
  schema there and are skipped explicitly, by API group; anything else without a schema fails.
- Policy checks (tests/deploy/policy.py) on every rendered object: pods non-root, read-only, RuntimeDefault
  seccomp, no capabilities, no hostPath, requests and limits; every namespace default-deny with Pod Security
  `restricted` enforced; no secret literal anywhere; and each check shown to catch a bad object.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, require_service
from tests.deploy import policy

pytestmark = pytest.mark.deploy

CHART = ROOT / "helm" / "market-media"
VALUES_FILES = [None, "values-staging.yaml", "values-production.yaml"]
DAGSTER_VALUES = sorted((ROOT / "helm").glob("dagster-values*.yaml"))
HELM_VERSION = "v4.3.2"
# The Kubernetes version the manifests are rendered for and validated against (kubernetes-validate's newest schemas).
KUBE_VERSION = "1.37.0"
NAMESPACES = {"market-media-api", "market-media-workers", "market-media-admin"}
# Custom resources: no schema in kubernetes-validate, skipped from schema validation on purpose (by API group).
CRD_GROUPS = {"external-secrets.io", "security.istio.io"}
RELEASE_NAMESPACE = "market-media-admin"


def values_id(values: str | None) -> str:
    return values or "values.yaml"


@pytest.fixture(scope="session")
def helm() -> str:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default = cache / "mm-platform" / f"helm-{HELM_VERSION}" / "bin" / "helm"
    path = os.environ.get("MM_TEST_HELM") or (str(default) if default.exists() else None)
    return require_service("helm", path, "run scripts/services/helm.sh install (builds helm from the Go module proxy)")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    # A private config/cache folder: a developer's helm repositories and plugins play no part.
    env = {**os.environ, "HELM_CONFIG_HOME": "/nonexistent-helm-config", "HELM_CACHE_HOME": "/nonexistent-helm-cache"}
    env.pop("KUBECONFIG", None)
    return subprocess.run([helm, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def values_args(values: str | None) -> list[str]:
    return ["-f", str(CHART / values)] if values else []


_rendered: dict[str | None, list[dict[str, Any]]] = {}


def render(helm: str, values: str | None) -> list[dict[str, Any]]:
    if values not in _rendered:
        result = run_helm(
            helm,
            "template",
            "mm",
            str(CHART),
            "--namespace",
            RELEASE_NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            *values_args(values),
        )
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        _rendered[values] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return _rendered[values]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    matches = [
        o
        for o in of_kind(objects, kind)
        if o["metadata"]["name"] == name and namespace in (None, o["metadata"].get("namespace"))
    ]
    assert len(matches) == 1, f"expected one {kind} {namespace}/{name}, found {len(matches)}"
    return matches[0]


# --- helm itself -----------------------------------------------------------------------------------------------


def test_helm_is_the_pinned_version(helm: str) -> None:
    assert run_helm(helm, "version", "--short").stdout.startswith(HELM_VERSION)


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_lint_strict(helm: str, values: str | None) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *values_args(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_manifests_match_the_kubernetes_schemas(helm: str, values: str | None) -> None:
    from kubernetes_validate import utils as kv

    objects = render(helm, values)
    checked, skipped, errors = [], [], []
    for obj in objects:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group in CRD_GROUPS:
            skipped.append(policy.describe(obj))  # a custom resource: no schema offline, on purpose
            continue
        try:
            kv.validate(obj, KUBE_VERSION, strict=True)
            checked.append(policy.describe(obj))
        except kv.ValidationError as e:
            errors.append(f"{policy.describe(obj)}: {e.message} at {'.'.join(map(str, e.path))}")
        except kv.SchemaNotFoundError:
            errors.append(f"{policy.describe(obj)}: no Kubernetes {KUBE_VERSION} schema for {obj['apiVersion']}")
    assert not errors, "\n".join(errors)
    assert len(checked) >= 25 and skipped, (checked, skipped)


def test_schema_validation_catches_a_wrong_field() -> None:
    from kubernetes_validate import utils as kv

    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {"minAvailable": 1, "selectr": {}},
    }
    with pytest.raises(kv.ValidationError):
        kv.validate(pdb, KUBE_VERSION, strict=True)


# --- policies on every rendered object -------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_every_pod_is_restricted_and_bounded(helm: str, values: str | None) -> None:
    objects = render(helm, values)
    workloads = [o for o in objects if list(policy.pod_specs(o))]
    assert {o["metadata"]["name"] for o in workloads} >= {"mm-api", "mm-db-upgrade"}
    findings = [f for o in objects for f in policy.pod_findings(o)]
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_every_namespace_denies_by_default(helm: str, values: str | None) -> None:
    objects = render(helm, values)
    assert {o["metadata"]["name"] for o in of_kind(objects, "Namespace")} == NAMESPACES
    assert policy.namespaces_used(objects) == NAMESPACES
    findings = policy.namespace_findings(objects)
    assert not findings, "\n".join(findings)
    for ns in of_kind(objects, "Namespace"):
        labels = ns["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert ns["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_no_secret_literal_anywhere(helm: str, values: str | None) -> None:
    objects = render(helm, values)
    findings = [f for o in objects for f in policy.secret_findings(o)]
    assert not findings, "\n".join(findings)
    # Secrets arrive as references: ExternalSecrets against the Vault-backed store, read with envFrom.
    externals = of_kind(objects, "ExternalSecret")
    assert {(e["metadata"]["namespace"], e["metadata"]["name"]) for e in externals} >= {
        ("market-media-api", "mm-runtime"),
        ("market-media-workers", "mm-runtime"),
        ("market-media-workers", "dagster-postgresql-secret"),
        ("market-media-admin", "mm-migrations"),
    }
    for e in externals:
        assert e["apiVersion"] == "external-secrets.io/v1"
        assert e["spec"]["secretStoreRef"]["kind"] == "ClusterSecretStore"
        assert all(set(d["remoteRef"]) == {"key", "property"} for d in e["spec"]["data"])
    store = of_kind(objects, "ClusterSecretStore")[0]
    assert set(store["spec"]["provider"]) == {"vault"}
    assert set(store["spec"]["provider"]["vault"]["auth"]) == {"kubernetes"}  # no static token


@pytest.mark.parametrize("values", [None, "values-production.yaml"], ids=values_id)
def test_production_settings_are_complete(helm: str, values: str | None) -> None:
    """MM_ENVIRONMENT=production refuses to start without these (mm_pipelines.config): each comes from the settings
    ConfigMap or the runtime ExternalSecret, and every MM_* name is one the settings model knows."""
    from mm_pipelines.config import NOT_SETTINGS, Settings

    objects = render(helm, values)
    settings = named(objects, "ConfigMap", "mm-settings", "market-media-api")["data"]
    secret_env = {
        d["secretKey"] for d in named(objects, "ExternalSecret", "mm-runtime", "market-media-api")["spec"]["data"]
    }
    known = {Settings.env_name(f) for f in Settings.model_fields} | NOT_SETTINGS
    assert not {n for n in [*settings, *secret_env] if n.startswith("MM_")} - known
    assert settings["MM_ENVIRONMENT"] == "production"
    required = {"MM_OIDC_ISSUER", "MM_API_SIGNING_KEY", "MM_SENTINELNET_WEBHOOK_SECRET", "MM_POSTGRES_DSN"}
    required |= {"MM_PII_VAULT_URL", "MM_PII_VAULT_TOKEN", "MM_PII_DIGEST_KEY", "PGPASSWORD"}
    assert required <= set(settings) | secret_env
    assert not set(settings) & secret_env


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_api_is_highly_available(helm: str, values: str | None) -> None:
    objects = render(helm, values)
    api = named(objects, "Deployment", "mm-api", "market-media-api")
    assert api["spec"]["replicas"] >= 2
    hpa = named(objects, "HorizontalPodAutoscaler", "mm-api", "market-media-api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mm-api"}
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = named(objects, "PodDisruptionBudget", "mm-api", "market-media-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["mm", "api"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert {e.get("secretRef", {}).get("name") for e in container["envFrom"]} >= {"mm-runtime"}
    # The API reaches what it needs and nothing that is only the workers' (the ad platforms, the Kubernetes API).
    policy_ = named(objects, "NetworkPolicy", "mm-api", "market-media-api")
    ports = {p["port"] for rule in policy_["spec"]["egress"] for p in rule["ports"]}
    assert {5432, 8443, 9092, 443} <= ports and 6443 not in ports


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_migrations_run_as_a_hook_before_upgrades(helm: str, values: str | None) -> None:
    objects = render(helm, values)
    job = named(objects, "Job", "mm-db-upgrade", "market-media-admin")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert {"pre-upgrade", "post-install"} <= hooks
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["mm", "db", "upgrade"]
    assert {e.get("secretRef", {}).get("name") for e in container["envFrom"]} >= {"mm-migrations"}


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_channels_are_configuration(helm: str, values: str | None) -> None:
    objects = render(helm, values)
    for ns in NAMESPACES:
        channels = yaml.safe_load(named(objects, "ConfigMap", "mm-channels", ns)["data"]["channels.yaml"])
        assert {"meta", "google-ads"} <= set(channels)
        assert all("apiBase" in c and "requestsPerMinute" in c for c in channels.values())


def test_production_turns_on_strict_mtls(helm: str) -> None:
    objects = render(helm, "values-production.yaml")
    peers = of_kind(objects, "PeerAuthentication")
    assert {p["metadata"]["namespace"] for p in peers} == NAMESPACES
    assert all(p["spec"]["mtls"]["mode"] == "STRICT" for p in peers)
    assert all(n["metadata"]["labels"]["istio.io/dataplane-mode"] == "ambient" for n in of_kind(objects, "Namespace"))
    assert not of_kind(render(helm, None), "PeerAuthentication")


# --- the checks catch what they are for --------------------------------------------------------------------------


def good_pod() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "market-media-api"},
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "c",
                            "securityContext": {
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {"cpu": "1", "memory": "1Gi"},
                            },
                        }
                    ],
                }
            }
        },
    }


def broken(change) -> dict[str, Any]:
    obj = copy.deepcopy(good_pod())
    change(obj["spec"]["template"]["spec"])
    return obj


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        (lambda p: p["containers"][0].pop("resources"), "no limits for cpu, memory"),
        (lambda p: p["containers"][0]["resources"].pop("limits"), "no limits"),
        (lambda p: p["containers"][0]["resources"]["requests"].pop("memory"), "no requests for memory"),
        (lambda p: p["securityContext"].update(runAsNonRoot=False), "runAsNonRoot is not true"),
        (lambda p: p["securityContext"].update(runAsUser=0), "runs as uid 0"),
        (lambda p: p["securityContext"].pop("seccompProfile"), "seccompProfile is unset"),
        (lambda p: p["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"), "root filesystem is writable"),
        (
            lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (
            lambda p: p["containers"][0]["securityContext"].update(capabilities={"add": ["NET_ADMIN"]}),
            "not all dropped",
        ),
        (lambda p: p.update(volumes=[{"name": "docker", "hostPath": {"path": "/var/run"}}]), "is a hostPath"),
        (lambda p: p.update(hostNetwork=True), "hostNetwork is on"),
        (
            lambda p: p.update(initContainers=[{"name": "init", "image": "busybox"}]),
            "container init: root filesystem is writable",
        ),
    ],
)
def test_pod_checker_flags_a_bad_pod(change, finding: str) -> None:
    assert policy.pod_findings(good_pod()) == []
    findings = policy.pod_findings(broken(change))
    assert any(finding in f for f in findings), findings


def test_namespace_checker_flags_a_namespace_without_default_deny() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": {}}}
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny-all", "namespace": "a"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    ingress_only = copy.deepcopy(deny)
    ingress_only["spec"]["policyTypes"] = ["Ingress"]
    allow_all = copy.deepcopy(deny)
    allow_all["spec"]["egress"] = [{}]
    assert any("no default-deny" in f for f in policy.namespace_findings([ns]))
    assert any("no default-deny" in f for f in policy.namespace_findings([ns, ingress_only]))
    assert any("no default-deny" in f for f in policy.namespace_findings([ns, allow_all]))
    assert any("`restricted` is not enforced" in f for f in policy.namespace_findings([ns, deny]))
    ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    assert policy.namespace_findings([ns, deny]) == []
    # A namespace only used (not created) by an object is held to the same rule.
    assert policy.namespace_findings([ns, deny, good_pod()]) == [
        "namespace market-media-api: "
        + ("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    ]


@pytest.mark.parametrize(
    ("obj", "finding"),
    [
        ({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"x": "y"}}, "a Secret object"),
        ({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"MM_API_SIGNING_KEY": "abc"}}, "literal value"),
        ({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"PGPASSWORD": "hunter2"}}, "literal value"),
        ({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"api_token": "t0k3n"}}, "literal value"),
        (
            {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"url": "postgresql://mm:pw@db/mm"}},
            "password in a URL",
        ),
        ({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"id": "AKIAABCDEFGHIJKLMNOP"}}, "AWS access key"),
        ({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "-----BEGIN PRIVATE KEY-----"}}, "PEM"),
    ],
)
def test_secret_checker_flags_a_literal(obj: dict[str, Any], finding: str) -> None:
    findings = policy.secret_findings(obj)
    assert any(finding in f for f in findings), findings


def test_secret_checker_flags_a_literal_env_value() -> None:
    obj = good_pod()
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MM_KYC_API_KEY", "value": "live-123"}]
    assert any("env MM_KYC_API_KEY" in f for f in policy.secret_findings(obj))
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "MM_KYC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "mm-runtime", "key": "MM_KYC_API_KEY"}}}
    ]
    assert policy.secret_findings(obj) == []


# --- the official Dagster chart's values -------------------------------------------------------------------------


def load_dagster(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dagster_pods(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Each Dagster component's pod settings as a Pod, so that the same policy checks apply to it."""

    def pod(name: str, part: dict[str, Any], pod_sc: dict[str, Any] | None = None) -> dict[str, Any]:
        container = {"name": name, "securityContext": part.get("securityContext"), "resources": part.get("resources")}
        spec = {"securityContext": pod_sc or part.get("podSecurityContext"), "containers": [container]}
        spec["volumes"] = part.get("volumes") or []
        return {"kind": "Pod", "metadata": {"name": name, "namespace": "market-media-workers"}, "spec": spec}

    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    pods = [
        pod("dagster-webserver", values["dagsterWebserver"]),
        pod("dagster-daemon", values["dagsterDaemon"]),
        pod("run", launcher, launcher["runK8sConfig"]["podSpecConfig"]["securityContext"]),
    ]
    pods += [pod(d["name"], d) for d in values["dagster-user-deployments"]["deployments"]]
    return pods


def test_dagster_values_run_our_code_location_on_kubernetes() -> None:
    values = load_dagster(ROOT / "helm" / "dagster-values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "mm_pipelines.definitions"]
    assert deployment["replicaCount"] >= 2
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert launcher["config"]["k8sRunLauncher"]["jobNamespace"] == "market-media-workers"
    assert {s["name"] for s in launcher["config"]["k8sRunLauncher"]["envSecrets"]} == {"mm-runtime"}
    # Run and event storage in the managed Postgres, its password from the ExternalSecret, never generated here.
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["global"]["postgresqlSecretName"] == "dagster-postgresql-secret"
    logs = values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager" and logs["config"]["s3ComputeLogManager"]["bucket"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    limits = {t["key"]: t for t in coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]}
    assert {"mm/topic", "dagster/backfill", "mm/clickhouse", "mm/ad-platform"} <= set(limits)
    assert limits["mm/ad-platform"]["value"] == {"applyLimitPerUniqueValue": True}


def test_dagster_values_match_the_pinned_dagster() -> None:
    pinned = re.search(r"^dagster==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    for path in DAGSTER_VALUES:
        assert f"--version {pinned}" in path.read_text(encoding="utf-8"), f"{path.name} names another chart version"


@pytest.mark.parametrize("path", DAGSTER_VALUES, ids=lambda p: p.name)
def test_dagster_values_hold_no_secret(path: Path) -> None:
    findings = policy.secret_findings(load_dagster(path), path.name)
    assert not findings, "\n".join(findings)


def test_dagster_pods_are_restricted_and_bounded() -> None:
    findings = [
        f for p in dagster_pods(load_dagster(ROOT / "helm" / "dagster-values.yaml")) for f in policy.pod_findings(p)
    ]
    assert not findings, "\n".join(findings)


def test_dagster_pod_check_catches_a_component_without_limits() -> None:
    values = load_dagster(ROOT / "helm" / "dagster-values.yaml")
    values["dagsterDaemon"] = {**values["dagsterDaemon"], "resources": {}}
    findings = [f for p in dagster_pods(values) for f in policy.pod_findings(p)]
    assert any("dagster-daemon" in f and "no limits" in f for f in findings), findings


# --- the image -----------------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert policy.dockerfile_findings(text) == []
    assert "python:3.11-slim-bookworm" in text
    # The dbt manifest is prepared at build time, the way the platform prepares it, and seeds MM_HOME at start.
    assert "mm_dbt_project()" in text and "manifest.json" in text
    assert re.search(r"^ENV .*MM_HOME=/var/lib/mm", re.sub(r"\\\n", " ", text), re.M)


@pytest.mark.parametrize(
    ("mutate", "finding"),
    [
        (
            lambda t: t.replace("FROM ${PYTHON_IMAGE} AS runtime", "").replace("COPY --from=builder", "COPY"),
            "multi-stage",
        ),
        (lambda t: t.replace("USER 10001:10001", "USER mm"), "not numeric"),
        (lambda t: t.replace("USER 10001:10001", "USER 0"), "root"),
        (lambda t: t.replace("USER 10001:10001", ""), "no USER"),
        (lambda t: t.replace("pip install -c constraints.txt .", "pip install ."), "without -c constraints.txt"),
        (lambda t: t.replace("python:3.11-slim-bookworm", "python"), "not pinned"),
        (lambda t: t + "\nENV MM_API_SIGNING_KEY=abc123\n", "literal value"),
    ],
)
def test_dockerfile_checker_flags_a_bad_image(mutate, finding: str) -> None:
    text = mutate((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    findings = policy.dockerfile_findings(text)
    assert any(finding in f for f in findings), findings


def test_dockerignore_keeps_the_context_to_what_the_image_needs() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    assert lines[lines.index("*")] == "*"  # everything out, then only what the Dockerfile copies back in
    assert {"!setup.py", "!constraints.txt", "!mm_pipelines/", "!dbt_project/"} <= set(lines)
    copied = re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = {s for c in copied for s in c.split() if not s.startswith("<<")}
    assert sources <= {"setup.py", "constraints.txt", "mm_pipelines", "dbt_project"}, sources


def test_chart_matches_the_dagster_values() -> None:
    """The names helm/market-media provides for the Dagster release are the ones helm/dagster-values.yaml uses."""
    chart = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    values = load_dagster(ROOT / "helm" / "dagster-values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["name"] == chart["dagster"]["userDeployment"]
    assert values["dagsterWebserver"]["service"]["port"] == chart["dagster"]["webserverPort"]
    assert values["global"]["postgresqlSecretName"] == chart["secrets"]["dagsterPostgres"]["name"]
    assert values["global"]["dagsterHome"].startswith(chart["settings"]["MM_HOME"] + "/")
    refs = {c["name"] for c in deployment["envConfigMaps"]} | {s["name"] for s in deployment["envSecrets"]}
    assert refs == {"mm-settings", "mm-runtime"}
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert {chart["settings"]["MM_HOME"], "/tmp"} <= mounts


CLUSTER_SCOPED = {"Namespace", "ClusterSecretStore"}


@pytest.mark.parametrize("values", VALUES_FILES, ids=values_id)
def test_every_namespaced_object_names_its_namespace(helm: str, values: str | None) -> None:
    """Nothing lands in the release namespace by accident."""
    objects = render(helm, values)
    loose = [
        policy.describe(o) for o in objects if o["kind"] not in CLUSTER_SCOPED and not o["metadata"].get("namespace")
    ]
    assert not loose, loose


@pytest.mark.parametrize(
    ("override", "check", "finding"),
    [
        (["--set", "api.resources.limits=null"], policy.pod_findings, "container api: no limits for cpu, memory"),
        (
            ["--set", "migrations.resources.limits.memory=null"],
            policy.pod_findings,
            "no limits",
        ),
        (["--set", "securityContext.runAsUser=0"], policy.pod_findings, "runs as uid 0"),
        (
            ["--set", "settings.MM_API_SIGNING_KEY=s3cr3t"],
            policy.secret_findings,
            "MM_API_SIGNING_KEY looks like a secret",
        ),
        (["--set", "settings.MM_POSTGRES_DSN=postgresql://mm:pw@db/mm"], policy.secret_findings, "a password in a URL"),
    ],
)
def test_checks_catch_a_bad_override_in_the_rendered_chart(helm: str, override: list[str], check, finding: str) -> None:
    """End to end: the chart rendered with a bad value, and the check on the rendered objects flags it."""
    result = run_helm(
        helm, "template", "mm", str(CHART), "-n", RELEASE_NAMESPACE, "--kube-version", KUBE_VERSION, *override
    )
    assert result.returncode == 0, result.stderr
    findings = [f for o in yaml.safe_load_all(result.stdout) if o for f in check(o)]
    assert any(finding in f for f in findings), findings


def test_namespace_check_catches_a_chart_without_namespaces(helm: str) -> None:
    """With namespaces.create=false the chart still uses the three namespaces: their default deny is still checked."""
    result = run_helm(helm, "template", "mm", str(CHART), "-n", RELEASE_NAMESPACE, "--set", "namespaces.create=false")
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    assert policy.namespace_findings(objects) == []
    no_deny = [o for o in objects if o["kind"] != "NetworkPolicy" or o["metadata"]["name"] != "default-deny-all"]
    assert len(policy.namespace_findings(no_deny)) == 3


def test_helm_script_fails_with_one_line_when_helm_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(ROOT / "scripts" / "services" / "helm.sh"), "path"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"helm: error: not installed: run '{ROOT}/scripts/services/helm.sh install'"]
    no_go = {**env, "PATH": "/nonexistent"}
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "services" / "helm.sh"), "install"],
        capture_output=True,
        text=True,
        env=no_go,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["helm: error: Go (>= 1.25) is needed to build helm; install it and retry"]


def test_user_code_pdb_selects_the_official_charts_pods(helm: str) -> None:
    """The user-deployments chart labels its pods component=user-deployments, deployment=<name>."""
    pdb = named(render(helm, None), "PodDisruptionBudget", "mm-pipelines", "market-media-workers")
    assert pdb["spec"]["selector"]["matchLabels"] == {"component": "user-deployments", "deployment": "mm-pipelines"}
    assert pdb["spec"]["maxUnavailable"] == 1  # never blocks a drain, whatever the replica count
