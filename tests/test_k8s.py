"""deploy/k8s, rendered by the real kustomize (`make kustomize` builds it into the cache) and every
object validated offline against Kubernetes' own API schemas (kubernetes-validate, strict: unknown
fields are errors); then what the schemas cannot know: probes, graceful termination, budgets,
the migration Job, and autoscaling capped at the partition count."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.local.processes import cache_dir
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
KUSTOMIZE_VERSION = "v5.7.1"  # the Makefile's KUSTOMIZE_VERSION
SERVICES = ("ingest", "scoring", "alerts", "surveys", "console")
# uvicorn's timeout_graceful_shutdown (shared/service.py) plus the preStop pause and a margin for
# the consumers' last commit.
GRACEFUL_STOP_SECONDS = 30


def kustomize() -> Path:
    default = cache_dir() / "bin" / f"kustomize-{KUSTOMIZE_VERSION}"
    binary = Path(os.environ.get("CHURNWATCH_KUSTOMIZE", default))
    assert binary.exists(), f"{binary} is missing: run `make kustomize`"
    return binary


def render(overlay: str) -> list[dict[str, Any]]:
    built = subprocess.run([str(kustomize()), "build", str(K8S / "overlays" / overlay)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_rendered_object_is_valid_against_the_api_schemas(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 20
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_what_kubernetes_would() -> None:
    deployment = copy.deepcopy(of_kind(render("dev"), "Deployment")["scoring"])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(of_kind(render("dev"), "Deployment")["scoring"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_each_service_is_deployed_probed_budgeted_and_stopped_gracefully(
        rendered: list[dict[str, Any]]) -> None:
    deployments, services = of_kind(rendered, "Deployment"), of_kind(rendered, "Service")
    budgets = of_kind(rendered, "PodDisruptionBudget")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        port = getattr(Settings(), f"{name}_port")
        assert container["ports"][0]["containerPort"] == port
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > pause + GRACEFUL_STOP_SECONDS
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert [c["command"] for c in pod["initContainers"]] == [["churnwatch", "migrate", "--check"]]
        refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert refs == ["churnwatch-config", "churnwatch-secrets"]
        labels = pod_labels(deployment)
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert services[name]["spec"]["selector"].items() <= labels.items()
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_settings_are_churnwatch_settings_and_the_migration_job_runs_the_step(
        rendered: list[dict[str, Any]]) -> None:
    known = {f"CHURNWATCH_{name.upper()}" for name in Settings.model_fields}
    config = of_kind(rendered, "ConfigMap")["churnwatch-config"]["data"]
    assert set(config) <= known, set(config) - known
    Settings(**{k.removeprefix("CHURNWATCH_").lower(): v for k, v in config.items()})
    for secret in of_kind(rendered, "Secret").values():
        assert set(secret.get("stringData", {})) | set(secret.get("data", {})) <= known
    job = of_kind(rendered, "Job")["churnwatch-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["churnwatch", "migrate"]


def test_ingress_routes_ingest_and_the_console(rendered: list[dict[str, Any]]) -> None:
    ingress = of_kind(rendered, "Ingress")["churnwatch"]
    backends = {path["backend"]["service"]["name"]
                for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert backends == {"ingest", "console"}
    assert backends <= set(of_kind(rendered, "Service"))


def test_scoring_and_alerts_scale_on_consumer_lag_up_to_the_partition_count(
        rendered: list[dict[str, Any]]) -> None:
    config = of_kind(rendered, "ConfigMap")["churnwatch-config"]["data"]
    partitions = int(config["CHURNWATCH_TOPIC_PARTITIONS"])
    autoscalers = of_kind(rendered, "HorizontalPodAutoscaler")
    assert set(autoscalers) == {"scoring", "alerts"}
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        # The autoscaler owns the count: a re-apply must not reset it.
        assert "replicas" not in of_kind(rendered, "Deployment")[name]["spec"]
        assert hpa["spec"]["maxReplicas"] == partitions  # one consumer per partition at most
        (metric,) = hpa["spec"]["metrics"]
        assert metric["external"]["metric"]["name"] == "churnwatch_consumer_lag"
        assert metric["external"]["metric"]["selector"]["matchLabels"] == {"service": name}


def test_prod_runs_replicated_topics_and_brings_its_own_secret() -> None:
    prod = render("prod")
    config = of_kind(prod, "ConfigMap")["churnwatch-config"]["data"]
    assert int(config["CHURNWATCH_TOPIC_REPLICATION_FACTOR"]) >= 3
    assert "churnwatch-secrets" not in of_kind(prod, "Secret")
    assert {o["metadata"].get("namespace") for o in prod} == {"churnwatch"}
