"""The Kubernetes manifests in deploy/k8s, read as YAML (no cluster needed).

When kubectl is installed, the production overlay is also rendered with its built-in kustomize.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from chromaline.cli.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
WORKERS = ("detector", "corrector", "reporter")
AUTOSCALED = ("detector", "corrector")
DEPENDENCY_PORTS = {5672, 5432, 9000}
DNS_PORT = 53
UVICORN_DRAIN_SECONDS = 30
ENV_REFERENCE = re.compile(r"\$\(([A-Z0-9_]+)\)")

Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def base_manifests() -> list[Manifest]:
    kustomization = load_documents(BASE / "kustomization.yaml")[0]
    return [document for name in kustomization["resources"] for document in load_documents(BASE / name)]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {item["metadata"]["name"]: item for item in manifests if item["kind"] == kind}


def env_file(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {name: value for name, value in pairs}


def pod_labels(deployment: Manifest) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(policy: Manifest, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    assert set(selector) <= {"matchLabels"}, "policies select pods by matchLabels only"
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def rule_ports(rule: Manifest) -> Iterator[int | str]:
    for port in rule.get("ports", []):
        yield port["port"]


def resolve_port(port: int | str, container: Manifest) -> int:
    if isinstance(port, int):
        return port
    [named] = [entry for entry in container["ports"] if entry["name"] == port]
    return int(named["containerPort"])


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return base_manifests()


@pytest.fixture(scope="module")
def deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    return of_kind(manifests, "Deployment")


@pytest.fixture(scope="module")
def policies(manifests: list[Manifest]) -> list[Manifest]:
    return list(of_kind(manifests, "NetworkPolicy").values())


def only_container(deployment: Manifest) -> Manifest:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    result: Manifest = container
    return result


def default_port(service: str) -> int:
    settings = SERVICES[service].load_settings()
    return int(type(settings).model_fields["port"].default)


def test_kustomization_lists_every_manifest_file() -> None:
    kustomization = load_documents(BASE / "kustomization.yaml")[0]
    files = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == files


def test_each_service_has_its_own_file_with_account_deployment_and_service() -> None:
    for service in SERVICES:
        documents = load_documents(BASE / f"{service}.yaml")
        named = {(item["kind"], item["metadata"]["name"]) for item in documents}

        assert {("ServiceAccount", service), ("Deployment", service), ("Service", service)} <= named


def test_deployments_run_each_service_with_its_serve_command_and_port(
    deployments: dict[str, Manifest],
) -> None:
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        container = only_container(deployment)
        assert container["command"] == ["chromaline", "serve", name]
        assert [port["containerPort"] for port in container["ports"]] == [default_port(name)]
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == name


def test_pods_run_as_non_root_under_the_runtime_seccomp_profile(deployments: dict[str, Manifest]) -> None:
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name


def test_containers_have_read_only_root_and_no_capabilities(deployments: dict[str, Manifest]) -> None:
    for name, deployment in deployments.items():
        security = only_container(deployment)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert "add" not in security["capabilities"], name


def test_tmp_is_the_only_writable_mount_and_is_an_empty_dir(deployments: dict[str, Manifest]) -> None:
    for name, deployment in deployments.items():
        volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = only_container(deployment)["volumeMounts"]

        assert [mount["mountPath"] for mount in mounts] == ["/tmp"], name
        assert "sizeLimit" in volumes[mounts[0]["name"]]["emptyDir"], name


def test_liveness_asks_healthz_and_readiness_asks_readyz(deployments: dict[str, Manifest]) -> None:
    for name, deployment in deployments.items():
        container = only_container(deployment)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name


def test_containers_request_and_limit_cpu_and_memory(deployments: dict[str, Manifest]) -> None:
    for name, deployment in deployments.items():
        resources = only_container(deployment)["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), f"{name} {bound}"


def test_grace_period_outlasts_the_http_drain(deployments: dict[str, Manifest]) -> None:
    for name, deployment in deployments.items():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > UVICORN_DRAIN_SECONDS, name


def test_every_environment_reference_is_defined_by_the_config_or_the_credentials(
    deployments: dict[str, Manifest],
) -> None:
    defined = set(env_file(BASE / "config.env")) | set(env_file(PRODUCTION / "credentials.env.example"))
    for name, deployment in deployments.items():
        container = only_container(deployment)
        sources = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        urls = {entry["name"]: entry["value"] for entry in container["env"]}

        assert sources == {"chromaline-config", "chromaline-credentials"}, name
        service_urls = {"CHROMALINE_GATEWAY_AUTH_URL"} if name == "gateway" else set()
        assert set(urls) == {
            "CHROMALINE_BUS_URL",
            "CHROMALINE_DATABASE_URL",
            "CHROMALINE_BLOB_URL",
            *service_urls,
        }, name
        for url in urls.values():
            assert set(ENV_REFERENCE.findall(url)) <= defined, url


def test_credentials_are_generated_from_an_ignored_file() -> None:
    overlay = load_documents(PRODUCTION / "kustomization.yaml")[0]
    [generator] = overlay["secretGenerator"]
    ignored = (PRODUCTION / ".gitignore").read_text().split()

    assert generator["name"] == "chromaline-credentials"
    assert generator["envs"] == ["credentials.env"]
    assert "credentials.env" in ignored
    example = env_file(PRODUCTION / "credentials.env.example")
    secrets = {
        name: value
        for name, value in example.items()
        if name.endswith(("_PASSWORD", "_SECRET", "_SECRET_KEY"))
    }
    assert len(secrets) == 4
    assert set(secrets.values()) == {""}, "the example holds no secret values"


def test_autoscaled_deployments_leave_replicas_to_their_autoscaler(
    manifests: list[Manifest], deployments: dict[str, Manifest]
) -> None:
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")

    assert set(autoscalers) == set(AUTOSCALED)
    for name, autoscaler in autoscalers.items():
        target = autoscaler["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert autoscaler["spec"]["minReplicas"] >= 1
        assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
        assert "replicas" not in deployments[name]["spec"]


def test_a_default_deny_policy_covers_every_pod(policies: list[Manifest]) -> None:
    default_deny = [
        policy
        for policy in policies
        if policy["spec"]["podSelector"] == {}
        and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]

    assert len(default_deny) == 1


def allowed_ingress(policies: list[Manifest], deployment: Manifest) -> list[Manifest]:
    labels = pod_labels(deployment)
    return [
        rule
        for policy in policies
        if selects(policy, labels) and "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", [])
    ]


def allowed_egress_ports(policies: list[Manifest], deployment: Manifest) -> set[int]:
    labels = pod_labels(deployment)
    container = only_container(deployment)
    return {
        resolve_port(port, container)
        for policy in policies
        if selects(policy, labels) and "Egress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("egress", [])
        for port in rule_ports(rule)
    }


def test_gateway_takes_traffic_from_anywhere_on_its_port_only(
    policies: list[Manifest], deployments: dict[str, Manifest]
) -> None:
    gateway = deployments["gateway"]
    rules = allowed_ingress(policies, gateway)

    assert any("from" not in rule for rule in rules)
    ports = {resolve_port(port, only_container(gateway)) for rule in rules for port in rule_ports(rule)}
    assert ports == {default_port("gateway")}


def test_workers_take_only_metrics_scrapes_from_the_monitoring_namespace(
    policies: list[Manifest], deployments: dict[str, Manifest]
) -> None:
    for name in WORKERS:
        rules = allowed_ingress(policies, deployments[name])

        assert rules, name
        for rule in rules:
            assert rule["from"] == [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ], name
            ports = {resolve_port(port, only_container(deployments[name])) for port in rule_ports(rule)}
            assert ports == {default_port(name)}, name


def test_every_service_may_reach_dns_and_its_dependencies(
    policies: list[Manifest], deployments: dict[str, Manifest]
) -> None:
    for name, deployment in deployments.items():
        assert {DNS_PORT, *DEPENDENCY_PORTS} <= allowed_egress_ports(policies, deployment), name


def test_only_the_detector_may_reach_public_addresses(
    policies: list[Manifest], deployments: dict[str, Manifest]
) -> None:
    for name, deployment in deployments.items():
        labels = pod_labels(deployment)
        blocks = [
            peer["ipBlock"]
            for policy in policies
            if selects(policy, labels)
            for rule in policy["spec"].get("egress", [])
            for peer in rule.get("to", [])
            if "ipBlock" in peer
        ]
        if name == "detector":
            [block] = blocks
            assert "169.254.0.0/16" in block["except"], "cloud metadata must stay unreachable"
        else:
            assert blocks == [], name


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_production_overlay_renders(tmp_path: Path) -> None:
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    overlay = tree / "overlays" / "production"
    example = (overlay / "credentials.env.example").read_text()
    (overlay / "credentials.env").write_text(re.sub(r"=$", "=value-7c1e", example, flags=re.MULTILINE))

    result = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    rendered = [document for document in yaml.safe_load_all(result.stdout) if document]
    [secret] = of_kind(rendered, "Secret").values()
    [config] = of_kind(rendered, "ConfigMap").values()
    for item in rendered:
        if item["kind"] != "Namespace":
            assert item["metadata"]["namespace"] == "chromaline", item["metadata"]["name"]
    for deployment in of_kind(rendered, "Deployment").values():
        container = only_container(deployment)
        assert re.fullmatch(r".+/chromaline/[a-z]+:[\w.-]+", container["image"]), container["image"]
        references = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert references == {secret["metadata"]["name"], config["metadata"]["name"]}
