"""The Kubernetes manifests in deploy/k8s, rendered and checked without a cluster.

Both overlays (``dev`` and ``prod``) are rendered with ``kubectl kustomize``; every rendered
object is validated offline, built-in kinds against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields fail) and KEDA's kinds against the CRDs stored in ``schemas/``. The
structural tests then check what running the services safely needs, on the rendered objects,
so that a patch in an overlay cannot undo what the base promises.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from sqlalchemy.engine import make_url

from chromaline.cli import processes
from chromaline.cli.services import SERVICES
from chromaline.common.blobs.factory import parse_s3_url
from chromaline.common.testing.services import missing_service
from chromaline.gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
KEDA_SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSION = "1.32.0"

WORKERS = ("detector", "corrector", "reporter")
GRACE_MINIMUM_SECONDS = 60
DNS_PORT = 53
DEPENDENCIES = ("rabbitmq", "postgresql", "minio")
INGRESS_CONTROLLER_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"}
ENV_REFERENCE = re.compile(r"\$\(([A-Za-z0-9_]+)\)")
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([a-zA-Z]*)$")
BYTE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
NGINX = "nginx.ingress.kubernetes.io/"

Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def env_file(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {name: value for name, value in pairs}


def render(overlay: str, tree: Path) -> list[Manifest]:
    if shutil.which("kubectl") is None:
        missing_service("kubectl", "rendering the overlays needs `kubectl kustomize`")
    result = subprocess.run(
        ["kubectl", "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Manifest]]:
    """Both overlays as ``kubectl kustomize`` renders them; prod with credentials.env filled in."""
    tree = tmp_path_factory.mktemp("deploy") / "k8s"
    shutil.copytree(K8S, tree)
    prod = tree / "overlays" / "prod"
    example = (prod / "credentials.env.example").read_text()
    (prod / "credentials.env").write_text(re.sub(r"=$", "=value-7c1e", example, flags=re.MULTILINE))
    return {overlay: render(overlay, tree) for overlay in OVERLAYS}


@pytest.fixture(params=list(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def manifests(rendered: dict[str, list[Manifest]], overlay: str) -> list[Manifest]:
    return rendered[overlay]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {item["metadata"]["name"]: item for item in manifests if item["kind"] == kind}


def ours(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """Objects of ``kind`` that belong to Chromaline itself, not to the dev overlay's dependencies."""
    return {
        name: item
        for name, item in of_kind(manifests, kind).items()
        if item["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "chromaline"
    }


def pod_spec(workload: Manifest) -> Manifest:
    if workload["kind"] == "CronJob":
        spec: Manifest = workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    template: Manifest = workload["spec"]["template"]["spec"]
    return template


def pod_labels(workload: Manifest) -> dict[str, str]:
    if workload["kind"] == "CronJob":
        labels: dict[str, str] = workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        return labels
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    """Everything that runs pods."""
    kinds = ("Deployment", "StatefulSet", "Job", "CronJob")
    return [item for item in manifests if item["kind"] in kinds]


def our_workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [
        item
        for item in workloads(manifests)
        if pod_labels(item).get("app.kubernetes.io/part-of") == "chromaline"
    ]


def containers(workload: Manifest) -> list[Manifest]:
    spec = pod_spec(workload)
    found: list[Manifest] = [*spec.get("initContainers", []), *spec["containers"]]
    return found


def main_container(deployment: Manifest) -> Manifest:
    [container] = pod_spec(deployment)["containers"]
    result: Manifest = container
    return result


def default_port(service: str) -> int:
    settings = SERVICES[service].load_settings()
    return int(type(settings).model_fields["port"].default)


def byte_size(quantity: str) -> int:
    match = QUANTITY.match(quantity)
    assert match, quantity
    return int(float(match.group(1)) * BYTE_UNITS[match.group(2)])


# --- Label selectors and network policies ---------------------------------------------------------


def matches(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions with In) selects ``labels``."""
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "the policies use In expressions only"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def policies_for(manifests: list[Manifest], labels: dict[str, str], direction: str) -> list[Manifest]:
    return [
        policy
        for policy in of_kind(manifests, "NetworkPolicy").values()
        if matches(policy["spec"]["podSelector"], labels) and direction in policy["spec"]["policyTypes"]
    ]


def rules(manifests: list[Manifest], labels: dict[str, str], direction: str) -> list[Manifest]:
    key = direction.lower()
    return [
        rule for policy in policies_for(manifests, labels, direction) for rule in policy["spec"].get(key, [])
    ]


def numeric_ports(rule: Manifest, workload: Manifest | None = None) -> set[int]:
    ports: set[int] = set()
    for entry in rule.get("ports", []):
        port = entry["port"]
        if isinstance(port, str):
            assert workload is not None, f"named port {port} needs the pod it belongs to"
            [named] = [p for c in containers(workload) for p in c.get("ports", []) if p["name"] == port]
            port = named["containerPort"]
        ports.add(int(port))
    return ports


def egress_ports(manifests: list[Manifest], workload: Manifest) -> set[int]:
    return {port for rule in rules(manifests, pod_labels(workload), "Egress") for port in numeric_ports(rule)}


def dependency_ports(manifests: list[Manifest]) -> dict[str, set[int]]:
    """The ports the egress-<dependency> policies open, per dependency."""
    policies = of_kind(manifests, "NetworkPolicy")
    return {
        dependency: {
            port
            for rule in policies[f"egress-{dependency}"]["spec"]["egress"]
            for port in numeric_ports(rule)
        }
        for dependency in DEPENDENCIES
    }


def is_public_only(peer: Manifest) -> bool:
    block = peer.get("ipBlock")
    return (
        block is not None and block["cidr"] == "0.0.0.0/0" and set(block.get("except", [])) >= PRIVATE_RANGES
    )


# --- Offline schema validation --------------------------------------------------------------------


def strict_schema(schema: Any) -> Any:
    """The CRD schema with unknown fields refused, as ``kubectl apply --validate=strict`` does."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: strict_schema(value) for key, value in schema.items()}
    closed = "additionalProperties" in strict or strict.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in strict and not closed:
        strict["additionalProperties"] = False
    return strict


def keda_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(KEDA_SCHEMAS.glob("*.yaml")):
        [crd] = load_documents(path)
        for version in crd["spec"]["versions"]:
            schema = strict_schema(version["schema"]["openAPIV3Schema"])
            api_version = f"{crd['spec']['group']}/{version['name']}"
            validators[(api_version, crd["spec"]["names"]["kind"])] = jsonschema.Draft7Validator(schema)
    return validators


def validation_errors(
    item: Manifest, keda: dict[tuple[str, str], jsonschema.protocols.Validator]
) -> list[str]:
    name = f"{item['kind']}/{item['metadata']['name']}"
    if item["apiVersion"].startswith("keda.sh/"):
        validator = keda[(item["apiVersion"], item["kind"])]
        return [f"{name}: {error.json_path}: {error.message}" for error in validator.iter_errors(item)]
    try:
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.path))}: {error.message}"]
    return []


def test_every_rendered_object_is_valid_against_its_schema(manifests: list[Manifest]) -> None:
    keda = keda_validators()

    errors = [error for item in manifests for error in validation_errors(item, keda)]

    assert errors == []
    assert {item["kind"] for item in manifests} >= {"ScaledObject", "TriggerAuthentication", "Deployment"}


def test_validation_rejects_unknown_and_missing_fields(rendered: dict[str, list[Manifest]]) -> None:
    keda = keda_validators()
    deployment = of_kind(rendered["dev"], "Deployment")["detector"]
    misspelt = yaml.safe_load(yaml.safe_dump(deployment))
    main_container(misspelt)["livenessprobe"] = main_container(misspelt).pop("livenessProbe")
    scaled = yaml.safe_load(yaml.safe_dump(of_kind(rendered["dev"], "ScaledObject")["detector"]))
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    untriggered = yaml.safe_load(yaml.safe_dump(scaled))
    del untriggered["spec"]["triggers"][0]["metadata"]

    assert validation_errors(deployment, keda) == []
    assert validation_errors(misspelt, keda), "an unknown container field must fail"
    assert validation_errors(scaled, keda), "an unknown ScaledObject field must fail"
    assert validation_errors(untriggered, keda), "a trigger without metadata must fail"


# --- Layout ---------------------------------------------------------------------------------------


def kustomization_files(folder: Path) -> set[str]:
    kustomization = load_documents(folder / "kustomization.yaml")[0]
    listed = {name for name in kustomization.get("resources", []) if not name.startswith("..")}
    listed |= {patch["path"] for patch in kustomization.get("patches", [])}
    listed |= set(kustomization.get("configurations", []))
    return listed


@pytest.mark.parametrize("folder", [BASE, *OVERLAYS.values()], ids=["base", *OVERLAYS])
def test_each_kustomization_uses_every_manifest_file_beside_it(folder: Path) -> None:
    files = {path.name for path in folder.glob("*.yaml")} - {"kustomization.yaml"}

    assert kustomization_files(folder) == files


def test_each_service_has_its_own_file_with_account_deployment_service_budget_and_migration() -> None:
    for service in SERVICES:
        documents = load_documents(BASE / f"{service}.yaml")
        named = {(item["kind"], item["metadata"]["name"]) for item in documents}

        assert named == {
            ("ServiceAccount", service),
            ("Deployment", service),
            ("Service", service),
            ("PodDisruptionBudget", service),
            ("Job", f"{service}-migrate"),
        }


def test_no_secret_is_committed() -> None:
    committed = subprocess.run(
        ["git", "ls-files", "deploy/k8s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    manifests = [item for path in sorted(K8S.rglob("*.yaml")) for item in load_documents(path)]
    prod = OVERLAYS["prod"]

    assert not [item for item in manifests if item.get("kind") == "Secret"]
    assert "deploy/k8s/overlays/prod/credentials.env" not in committed
    assert "credentials.env" in (prod / ".gitignore").read_text().split()
    example = env_file(prod / "credentials.env.example")
    secret_names = [
        name for name in example if name.endswith(("_PASSWORD", "_SECRET", "_SECRET_KEY", "_URL"))
    ]
    assert secret_names, "the example names the secrets"
    assert {example[name] for name in secret_names} == {""}, "the example holds no secret values"


def test_dev_credentials_are_marked_dev_only() -> None:
    dev = env_file(OVERLAYS["dev"] / "dev-credentials.env")
    secrets = {
        name: value for name, value in dev.items() if name.endswith(("_PASSWORD", "_SECRET", "_SECRET_KEY"))
    }

    assert set(dev) == set(env_file(OVERLAYS["prod"] / "credentials.env.example"))
    assert len(secrets) == 4
    for name, value in secrets.items():
        assert value.startswith("dev-only-"), name
    assert "DEV ONLY" in (OVERLAYS["dev"] / "dev-credentials.env").read_text()


# --- Workloads ------------------------------------------------------------------------------------


def system_test_command(service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The command line the system tests start ``service`` with (tests/system/conftest.py)."""
    started: list[list[str]] = []

    def record(args: list[str], **_: Any) -> None:
        started.append(args)

    monkeypatch.setattr(subprocess, "Popen", record)
    processes.ServiceProcess(service, 8080, {}, tmp_path / f"{service}.log").start()
    [args] = started
    return [Path(args[0]).name, args[1]]


def test_each_deployment_runs_the_entry_point_the_system_tests_run(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deployments = ours(manifests, "Deployment")

    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        container = main_container(deployment)
        assert (
            container["command"]
            == system_test_command(name, monkeypatch, tmp_path)
            == [f"chromaline-{name}", "serve"]
        )
        assert "args" not in container, name
        assert [port["containerPort"] for port in container["ports"]] == [default_port(name)]
        assert pod_spec(deployment)["serviceAccountName"] == name


def console_scripts(distribution: str) -> set[str]:
    return {
        entry.name
        for entry in importlib.metadata.distribution(distribution).entry_points
        if entry.group == "console_scripts"
    }


def test_every_container_of_ours_runs_a_command_its_image_installs(manifests: list[Manifest]) -> None:
    """A service image holds its own package only: no ``chromaline`` CLI, no other service's scripts."""
    for workload in our_workloads(manifests):
        for container in containers(workload):
            repository = container["image"].rsplit(":", 1)[0]
            service = repository.rsplit("/", 1)[-1]
            assert service in SERVICES, container["image"]
            assert container["command"][0] in console_scripts(f"chromaline-{service}"), (
                workload["metadata"]["name"],
                container["command"],
            )


def test_services_send_to_the_pods_http_port(manifests: list[Manifest]) -> None:
    deployments = ours(manifests, "Deployment")
    for name, service in ours(manifests, "Service").items():
        assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels(deployments[name])), name
        [port] = service["spec"]["ports"]
        assert port["targetPort"] == "http", name


def test_every_pod_meets_the_restricted_pod_security_standard(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(workload):
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name


def test_our_containers_have_a_read_only_root_and_write_only_to_a_bounded_tmp(
    manifests: list[Manifest],
) -> None:
    for workload in our_workloads(manifests):
        volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
        for container in containers(workload):
            name = f"{workload['metadata']['name']}/{container['name']}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"], name
            assert "sizeLimit" in volumes[container["volumeMounts"][0]["name"]]["emptyDir"], name


def test_every_container_requests_and_limits_cpu_and_memory(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        for container in containers(workload):
            name = f"{workload['metadata']['name']}/{container['name']}"
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), f"{name} {bound}"
            assert byte_size(resources["requests"]["memory"]) <= byte_size(resources["limits"]["memory"]), (
                name
            )


def test_probes_ask_healthz_for_life_and_readyz_for_readiness(manifests: list[Manifest]) -> None:
    for name, deployment in ours(manifests, "Deployment").items():
        container = main_container(deployment)
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, f"{name} {probe}"


def test_grace_period_leaves_time_to_finish_an_image(manifests: list[Manifest]) -> None:
    for name, deployment in ours(manifests, "Deployment").items():
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace >= GRACE_MINIMUM_SECONDS, name


def test_each_service_has_a_disruption_budget_over_its_pods(manifests: list[Manifest]) -> None:
    deployments = ours(manifests, "Deployment")
    budgets = ours(manifests, "PodDisruptionBudget")

    assert set(budgets) == set(SERVICES)
    for name, budget in budgets.items():
        assert matches(budget["spec"]["selector"], pod_labels(deployments[name])), name
        assert budget["spec"]["maxUnavailable"] == 1, name


def test_each_service_schema_is_migrated_by_its_job_and_checked_before_its_pods_start(
    manifests: list[Manifest],
) -> None:
    deployments = ours(manifests, "Deployment")
    jobs = ours(manifests, "Job")

    assert set(jobs) == {f"{name}-migrate" for name in SERVICES}
    for name, entry in SERVICES.items():
        assert entry.spec.migrations.is_dir(), name
        [migrate] = pod_spec(jobs[f"{name}-migrate"])["containers"]
        [check] = pod_spec(deployments[name])["initContainers"]
        image = main_container(deployments[name])["image"]
        assert migrate["command"] == [f"chromaline-{name}", "migrate"]
        assert check["command"] == [f"chromaline-{name}", "migrate", "--check"]
        assert migrate["image"] == check["image"] == image
        assert pod_spec(jobs[f"{name}-migrate"])["serviceAccountName"] == name


def test_the_services_leave_migrations_to_the_jobs(
    manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    [config] = of_kind(manifests, "ConfigMap").values()
    for variable, value in config["data"].items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("CHROMALINE_SIGNING_SECRET", "a-real-secret-4f0e")

    for name, entry in SERVICES.items():
        assert entry.load_settings().migrate_on_start is False, name


def test_the_retention_sweep_runs_hourly_alone_as_the_gateway(manifests: list[Manifest]) -> None:
    [sweep] = of_kind(manifests, "CronJob").values()
    gateway = ours(manifests, "Deployment")["gateway"]
    [container] = pod_spec(sweep)["containers"]
    gateway_container = main_container(gateway)

    assert container["command"] == ["chromaline-retention-sweep"]
    assert sweep["spec"]["concurrencyPolicy"] == "Forbid"
    minute, hour, *_ = sweep["spec"]["schedule"].split()
    assert minute.isdigit(), "at a fixed minute"
    assert hour == "*", "every hour"
    assert container["image"] == gateway_container["image"]
    assert pod_spec(sweep)["securityContext"] == pod_spec(gateway)["securityContext"]
    assert container["securityContext"] == gateway_container["securityContext"]
    assert pod_spec(sweep)["serviceAccountName"] == "gateway"
    assert container["envFrom"] == gateway_container["envFrom"]
    gateway_env = {entry["name"]: entry["value"] for entry in gateway_container["env"]}
    for entry in container["env"]:
        assert gateway_env[entry["name"]] == entry["value"], entry["name"]
    assert gateway_env["CHROMALINE_GATEWAY_RETENTION_SWEEP_INTERVAL_SECONDS"] == "0"


# --- Configuration and credentials ----------------------------------------------------------------


def defined_variables(manifests: list[Manifest], overlay: str) -> dict[str, str]:
    """What the containers' env can refer to: the ConfigMap and the credentials' keys."""
    [config] = of_kind(manifests, "ConfigMap").values()
    credentials = env_file(
        OVERLAYS["dev"] / "dev-credentials.env"
        if overlay == "dev"
        else OVERLAYS["prod"] / "credentials.env.example"
    )
    return {
        **config["data"],
        **{name: value or f"{name.lower()}-value" for name, value in credentials.items()},
    }


def expanded(value: str, variables: dict[str, str]) -> str:
    return ENV_REFERENCE.sub(lambda match: variables[match.group(1)], value)


def test_every_environment_reference_is_defined(manifests: list[Manifest], overlay: str) -> None:
    variables = defined_variables(manifests, overlay)
    for workload in our_workloads(manifests):
        for container in containers(workload):
            for entry in container.get("env", []):
                if "value" in entry:
                    missing = set(ENV_REFERENCE.findall(entry["value"])) - set(variables)
                    assert not missing, f"{workload['metadata']['name']}: {entry['name']} needs {missing}"


def test_the_composed_urls_are_what_the_services_accept(manifests: list[Manifest], overlay: str) -> None:
    variables = defined_variables(manifests, overlay)
    gateway = main_container(ours(manifests, "Deployment")["gateway"])
    urls = {entry["name"]: expanded(entry["value"], variables) for entry in gateway["env"]}
    tls = overlay == "prod"

    assert urls["CHROMALINE_BUS_URL"].startswith("amqps://" if tls else "amqp://")
    database = make_url(urls["CHROMALINE_DATABASE_URL"])
    assert database.drivername == "postgresql+asyncpg"
    assert database.query["ssl"] == ("require" if tls else "disable")
    assert parse_s3_url(urls["CHROMALINE_BLOB_URL"]).secure is tls


def test_secrets_and_config_reach_the_containers_under_their_rendered_names(
    manifests: list[Manifest],
) -> None:
    [secret] = of_kind(manifests, "Secret").values()
    [config] = of_kind(manifests, "ConfigMap").values()
    expected = {("configMapRef", config["metadata"]["name"]), ("secretRef", secret["metadata"]["name"])}
    for workload in our_workloads(manifests):
        for container in containers(workload):
            sources = {
                (kind, source["name"]) for entry in container["envFrom"] for kind, source in entry.items()
            }
            assert sources == expected, workload["metadata"]["name"]


def test_the_gateway_gets_a_metrics_token_from_the_credentials(
    manifests: list[Manifest], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A production gateway without a token serves no /metrics, so Prometheus could not scrape it."""
    variables = defined_variables(manifests, overlay)
    gateway = main_container(ours(manifests, "Deployment")["gateway"])
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    for entry in gateway["env"]:
        monkeypatch.setenv(entry["name"], expanded(entry["value"], variables))

    settings = GatewaySettings.for_service("gateway")

    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value()


def test_prod_uses_managed_services_over_tls(rendered: dict[str, list[Manifest]]) -> None:
    [config] = of_kind(rendered["prod"], "ConfigMap").values()
    hosts = [config["data"][key] for key in ("RABBITMQ_HOST", "POSTGRES_HOST", "S3_ENDPOINT")]

    assert not of_kind(rendered["prod"], "StatefulSet")
    assert all("." in host and ".svc" not in host for host in hosts), hosts
    assert config["data"]["RABBITMQ_SCHEME"] == "amqps"


def test_dev_runs_its_own_dependencies_once_each(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["dev"]
    sets = of_kind(manifests, "StatefulSet")
    services = of_kind(manifests, "Service")
    [config] = of_kind(manifests, "ConfigMap").values()
    addresses = {
        "rabbitmq": (config["data"]["RABBITMQ_HOST"], int(config["data"]["RABBITMQ_PORT"])),
        "postgresql": (config["data"]["POSTGRES_HOST"], int(config["data"]["POSTGRES_PORT"])),
        "minio": tuple(config["data"]["S3_ENDPOINT"].split(":")),
    }

    assert set(sets) == set(DEPENDENCIES)
    for name, workload in sets.items():
        assert workload["spec"]["replicas"] == 1
        host, port = addresses[name]
        assert host == name
        assert int(port) in {entry["port"] for entry in services[name]["spec"]["ports"]}
        assert matches({"matchLabels": services[name]["spec"]["selector"]}, pod_labels(workload))
    for name, deployment in ours(manifests, "Deployment").items():
        assert deployment["spec"].get("replicas", 1) == 1, name


# --- Scaling --------------------------------------------------------------------------------------


def test_workers_scale_on_their_own_queue_with_keda(manifests: list[Manifest]) -> None:
    deployments = ours(manifests, "Deployment")
    scaled = of_kind(manifests, "ScaledObject")
    authentications = of_kind(manifests, "TriggerAuthentication")
    [secret] = of_kind(manifests, "Secret").values()

    assert set(scaled) == set(WORKERS)
    for name, item in scaled.items():
        spec = item["spec"]
        assert spec["scaleTargetRef"] == {"name": name}
        assert "replicas" not in deployments[name]["spec"], f"{name}: replicas belong to KEDA"
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"], name
        [trigger] = spec["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == SERVICES[name].spec.name, "the queue the worker consumes"
        assert SERVICES[name].spec.handlers, f"{name} consumes its queue"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert int(trigger["metadata"]["value"]) >= 1
        authentication = authentications[trigger["authenticationRef"]["name"]]
        [reference] = authentication["spec"]["secretTargetRef"]
        assert reference["parameter"] == "host"
        assert reference["name"] == secret["metadata"]["name"]
        assert reference["key"] in secret["data"]


def test_keda_reaches_the_dev_broker_from_its_own_namespace(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["dev"]
    [namespace] = of_kind(manifests, "Namespace")
    credentials = env_file(OVERLAYS["dev"] / "dev-credentials.env")
    url = urlsplit(credentials["RABBITMQ_SCALER_URL"])
    assert url.hostname is not None
    service, in_namespace, suffix = url.hostname.split(".", 2)

    assert (in_namespace, suffix) == (namespace, "svc")
    assert url.port in {port["port"] for port in of_kind(manifests, "Service")[service]["spec"]["ports"]}
    assert (url.username, url.password) == (
        credentials["RABBITMQ_USERNAME"],
        credentials["RABBITMQ_PASSWORD"],
    )


def test_the_gateway_scales_on_cpu(manifests: list[Manifest]) -> None:
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")

    assert set(autoscalers) == {"gateway"}
    spec = autoscalers["gateway"]["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    [metric] = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert spec["minReplicas"] <= spec["maxReplicas"]
    assert "replicas" not in ours(manifests, "Deployment")["gateway"]["spec"]


def test_prod_runs_more_replicas_than_dev(rendered: dict[str, list[Manifest]]) -> None:
    def minimums(manifests: list[Manifest]) -> dict[str, int]:
        found = {
            name: item["spec"]["minReplicaCount"] for name, item in of_kind(manifests, "ScaledObject").items()
        }
        found["gateway"] = of_kind(manifests, "HorizontalPodAutoscaler")["gateway"]["spec"]["minReplicas"]
        found["auth"] = ours(manifests, "Deployment")["auth"]["spec"]["replicas"]
        return found

    dev, prod = minimums(rendered["dev"]), minimums(rendered["prod"])

    assert set(dev) == set(prod) == set(SERVICES)
    assert set(dev.values()) == {1}
    for name in SERVICES:
        assert prod[name] >= 2, name


def test_prod_limits_memory_to_what_it_requests(rendered: dict[str, list[Manifest]]) -> None:
    for workload in our_workloads(rendered["prod"]):
        for container in containers(workload):
            resources = container["resources"]
            assert resources["requests"]["memory"] == resources["limits"]["memory"], workload["metadata"][
                "name"
            ]


# --- Ingress --------------------------------------------------------------------------------------


def test_the_ingress_serves_the_gateway_with_websocket_timeouts_and_an_upload_limit(
    manifests: list[Manifest], overlay: str
) -> None:
    ingresses = of_kind(manifests, "Ingress")
    settings = GatewaySettings()

    assert set(ingresses) == {"gateway"}
    ingress = ingresses["gateway"]
    annotations = ingress["metadata"]["annotations"]
    backends = [path["backend"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert backends == [{"service": {"name": "gateway", "port": {"name": "http"}}}]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[NGINX + timeout]) >= settings.job_deadline_seconds, timeout
    assert byte_size(annotations[NGINX + "proxy-body-size"]) >= settings.max_upload_bytes
    assert annotations[NGINX + "proxy-request-buffering"] == "off"
    if overlay == "prod":
        [tls] = ingress["spec"]["tls"]
        assert tls["hosts"] == [rule["host"] for rule in ingress["spec"]["rules"]]


# --- Network policies -----------------------------------------------------------------------------


def test_a_default_deny_policy_covers_every_pod(manifests: list[Manifest]) -> None:
    default_deny = [
        policy
        for policy in of_kind(manifests, "NetworkPolicy").values()
        if policy["spec"]["podSelector"] == {}
        and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]

    assert len(default_deny) == 1


def outside_sources(rule: Manifest) -> list[Manifest]:
    """The peers of an ingress rule outside the namespace (a rule without ``from`` admits all)."""
    if "from" not in rule:
        return [{}]
    return [peer for peer in rule["from"] if "podSelector" not in peer or "namespaceSelector" in peer]


def namespace_of(peer: Manifest) -> str | None:
    labels: dict[str, str] = peer.get("namespaceSelector", {}).get("matchLabels", {})
    return labels.get("kubernetes.io/metadata.name")


def test_only_the_gateway_is_reachable_from_outside_through_the_ingress_controller(
    manifests: list[Manifest],
) -> None:
    for workload in our_workloads(manifests):
        name = workload["metadata"]["name"]
        for rule in rules(manifests, pod_labels(workload), "Ingress"):
            namespaces = {namespace_of(peer) for peer in outside_sources(rule)}
            allowed = (
                {MONITORING_NAMESPACE, INGRESS_CONTROLLER_NAMESPACE}
                if name == "gateway"
                else {MONITORING_NAMESPACE}
            )
            assert namespaces <= allowed, f"{name} admits {namespaces}"
    gateway = ours(manifests, "Deployment")["gateway"]
    from_controller = [
        numeric_ports(rule, gateway)
        for rule in rules(manifests, pod_labels(gateway), "Ingress")
        if INGRESS_CONTROLLER_NAMESPACE in {namespace_of(peer) for peer in outside_sources(rule)}
    ]
    assert from_controller == [{default_port("gateway")}]


def test_only_the_gateway_reaches_auth(manifests: list[Manifest]) -> None:
    auth = ours(manifests, "Deployment")["auth"]
    auth_labels = pod_labels(auth)
    for workload in workloads(manifests):
        name = workload["metadata"]["name"]
        reaches_auth = [
            rule
            for rule in rules(manifests, pod_labels(workload), "Egress")
            for peer in rule.get("to", [])
            if "podSelector" in peer and matches(peer["podSelector"], auth_labels)
        ]
        if name == "gateway":
            assert [numeric_ports(rule) for rule in reaches_auth] == [{default_port("auth")}]
        else:
            assert reaches_auth == [], name
    callers = [
        peer["podSelector"]
        for rule in rules(manifests, auth_labels, "Ingress")
        for peer in rule["from"]
        if "podSelector" in peer
    ]
    assert callers == [
        {"matchLabels": {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/part-of": "chromaline"}}
    ]


def test_workers_reach_only_rabbitmq_postgresql_minio_and_dns(manifests: list[Manifest]) -> None:
    deployments = ours(manifests, "Deployment")
    dependency = set().union(*dependency_ports(manifests).values())
    for name in WORKERS:
        for rule in rules(manifests, pod_labels(deployments[name]), "Egress"):
            if name == "detector" and all(is_public_only(peer) for peer in rule["to"]):
                continue  # partners' source_url, public addresses only
            assert numeric_ports(rule) <= dependency | {DNS_PORT}, f"{name}: {rule}"
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    assert peer["ipBlock"]["cidr"] != "0.0.0.0/0", f"{name}: {peer}"
                else:
                    target = peer["podSelector"]["matchLabels"]
                    assert target.get("app.kubernetes.io/name") in DEPENDENCIES or target == {
                        "k8s-app": "kube-dns"
                    }, f"{name}: {peer}"


def test_each_pod_reaches_the_dependencies_it_uses(manifests: list[Manifest]) -> None:
    ports = dependency_ports(manifests)
    everything = {DNS_PORT} | set().union(*ports.values())
    for workload in our_workloads(manifests):
        name = workload["metadata"]["name"]
        reachable = egress_ports(manifests, workload)
        if pod_labels(workload)["app.kubernetes.io/component"] == "migration":
            assert reachable == {DNS_PORT} | ports["postgresql"], name
        else:
            assert everything <= reachable, name


def test_only_the_gateway_and_the_detector_reach_public_addresses(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        name = workload["metadata"]["name"]
        public = [
            peer
            for rule in rules(manifests, pod_labels(workload), "Egress")
            for peer in rule.get("to", [])
            if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
        ]
        if name in ("gateway", "detector"):
            [peer] = public
            assert is_public_only(peer), "cluster, node and cloud metadata addresses stay unreachable"
        else:
            assert public == [], name


def test_dev_dependencies_take_connections_from_chromaline_and_keda_only(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["dev"]
    sets = of_kind(manifests, "StatefulSet")
    for name, workload in sets.items():
        sources = rules(manifests, pod_labels(workload), "Ingress")
        [rule] = sources
        peers = rule["from"]
        assert {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "chromaline"}}} in peers, name
        outside = {namespace_of(peer) for peer in outside_sources(rule)}
        assert outside == ({"keda"} if name == "rabbitmq" else set()), name
