"""Build every service image from the one Dockerfile, write a bill of materials beside each, print sizes.

The services, their build arguments and their image names come from docker-compose.yml, so the
images are the ones Compose and the Kubernetes manifests run. Each build gets the labels' version
(``CHROMALINE_VERSION``, default ``dev``), revision (the checked-out commit) and source (the
``origin`` remote, when there is one).

The bill of materials (CycloneDX 1.5 JSON, ``build/images/<service>.cdx.json``) lists the Python
packages of the image, exported by uv from the lock the image was installed from with
``--frozen``, and the Debian packages that ``dpkg-query`` finds in the image itself.

    uv run --frozen python deploy/images.py [SERVICE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SBOM_DIRECTORY = ROOT / "build" / "images"
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+):\?")
MEGABYTE = 1_000_000


@dataclass(frozen=True)
class ImageBuild:
    service: str
    image: str
    dockerfile: str
    arguments: dict[str, str]


def compose_builds() -> list[ImageBuild]:
    """The services docker-compose.yml builds; its secrets get placeholders, no build reads them."""
    required = set(REQUIRED_VARIABLE.findall(COMPOSE_FILE.read_text()))
    environment = {name: "unused-for-building" for name in required} | dict(os.environ)
    resolved = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "config",
            "--format",
            "json",
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    services: dict[str, dict[str, Any]] = json.loads(resolved.stdout)["services"]
    return [
        ImageBuild(
            service=name,
            image=service["image"],
            dockerfile=service["build"].get("dockerfile", "Dockerfile"),
            arguments={key: str(value) for key, value in service["build"].get("args", {}).items()},
        )
        for name, service in sorted(services.items())
        if "build" in service
    ]


def git(*arguments: str) -> str | None:
    result = subprocess.run(["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def provenance() -> dict[str, str]:
    """The build arguments that become the images' revision and source labels."""
    labels = {"REVISION": git("rev-parse", "HEAD") or "unknown"}
    source = git("config", "--get", "remote.origin.url")
    if source:
        labels["SOURCE"] = source
    return labels


def build(image: ImageBuild, labels: dict[str, str]) -> float:
    """Build one image; returns the seconds it took."""
    arguments = image.arguments | labels
    command = ["docker", "build", "--file", str(ROOT / image.dockerfile), "--tag", image.image]
    for name, value in sorted(arguments.items()):
        command += ["--build-arg", f"{name}={value}"]
    started = time.monotonic()
    subprocess.run([*command, str(ROOT)], check=True)
    return time.monotonic() - started


def image_size(image: str) -> int:
    output = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(output)


def python_components(service: str) -> dict[str, Any]:
    exported = subprocess.run(
        [
            "uv",
            "export",
            "--format",
            "cyclonedx1.5",
            "--preview-features",
            "sbom-export",
            "--frozen",
            "--no-dev",
            "--no-editable",
            "--package",
            f"chromaline-{service}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    bom: dict[str, Any] = json.loads(exported)
    return bom


def debian_components(image: str) -> list[dict[str, Any]]:
    listing = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "dpkg-query",
            image,
            "--show",
            "--showformat=${Package}\t${Version}\t${Architecture}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    components = []
    for line in listing.splitlines():
        name, version, architecture = line.split("\t")
        purl = f"pkg:deb/debian/{name}@{version}?arch={architecture}"
        components.append(
            {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
        )
    return components


def write_sbom(image: ImageBuild) -> Path:
    """The image's CycloneDX document: the service's locked Python packages and its Debian packages."""
    bom = python_components(image.service)
    bom["components"] = [*bom.get("components", []), *debian_components(image.image)]
    bom["metadata"]["component"] = {
        "type": "container",
        "bom-ref": image.image,
        "name": image.image,
        "properties": [{"name": "chromaline:python-project", "value": f"chromaline-{image.service}"}],
    }
    SBOM_DIRECTORY.mkdir(parents=True, exist_ok=True)
    path = SBOM_DIRECTORY / f"{image.service}.cdx.json"
    path.write_text(json.dumps(bom, indent=2) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help="only these services (default: every one)")
    selected = set(parser.parse_args().services)
    builds = [image for image in compose_builds() if not selected or image.service in selected]
    labels = provenance()
    rows = []
    for image in builds:
        print(f"images: building {image.image}", flush=True)
        seconds = build(image, labels)
        sbom = write_sbom(image)
        rows.append((image.image, image_size(image.image) / MEGABYTE, seconds, sbom.relative_to(ROOT)))
    print(f"\n{'image':<32} {'size':>9} {'build':>8}  bill of materials")
    for name, size, seconds, sbom in rows:
        print(f"{name:<32} {size:>6.0f} MB {seconds:>6.1f} s  {sbom}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
