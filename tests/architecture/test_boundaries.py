"""Services share code only through libraries: walk every module's imports and every package's
declared dependencies, and fail on a service that reaches into another."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "auth", "detector", "corrector", "reporter")
LIBRARIES = ("common", "engine")
USES_ENGINE = {"detector", "corrector", "reporter"}


def chromaline_imports(source_root: Path) -> dict[Path, set[str]]:
    """Each module under ``source_root`` → the ``chromaline.<package>`` names it imports."""
    found: dict[Path, set[str]] = {}
    for module in sorted(source_root.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[module] = {name.split(".")[1] for name in names if name.startswith("chromaline.")}
    return found


def allowed_packages(package: str) -> set[str]:
    if package == "common":
        return {"common"}
    if package == "engine":
        return {"common", "engine"}
    return {package, "common"} | ({"engine"} if package in USES_ENGINE else set())


def package_root(package: str) -> Path:
    folder = "libs" if package in LIBRARIES else "services"
    return ROOT / folder / package / "src" / "chromaline" / package


@pytest.mark.parametrize("package", SERVICES + LIBRARIES)
def test_a_package_imports_only_itself_and_the_libraries_it_may_use(package: str) -> None:
    allowed = allowed_packages(package)
    crossings = {
        str(module.relative_to(ROOT)): sorted(imported - allowed)
        for module, imported in chromaline_imports(package_root(package)).items()
        if imported - allowed
    }

    assert crossings == {}


def test_the_walk_finds_an_import_of_another_service(tmp_path: Path) -> None:
    module = tmp_path / "handlers.py"
    module.write_text("def handle():\n    from chromaline.detector.handlers import NAME\n    return NAME\n")

    assert chromaline_imports(tmp_path) == {module: {"detector"}}


@pytest.mark.parametrize("package", SERVICES + LIBRARIES)
def test_no_package_depends_on_a_service_package(package: str) -> None:
    folder = "libs" if package in LIBRARIES else "services"
    project = tomllib.loads((ROOT / folder / package / "pyproject.toml").read_text())["project"]
    declared = {
        requirement.split("[")[0].split(">")[0].split("=")[0] for requirement in project["dependencies"]
    }
    expected = {f"chromaline-{name}" for name in allowed_packages(package) - {package}}

    assert {name for name in declared if name.startswith("chromaline-")} == expected


def modules_loaded_by_serve(service: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` a fresh ``chromaline serve <service>`` process has imported once the
    command line and that service's entry are loaded (what its resident memory pays for)."""
    probe = (
        "import sys; from chromaline.cli.main import app; from chromaline.cli.services import service_entry; "
        f"service_entry({service!r}); print(','.join(m for m in {candidates!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return [name for name in loaded.strip().split(",") if name]


@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_the_gateway_and_auth_load_no_image_or_plotting_library(service: str) -> None:
    heavy = ("cv2", "colour", "matplotlib", "scipy", "numpy", "pandas", "chromaline.engine")

    assert modules_loaded_by_serve(service, heavy) == []


@pytest.mark.parametrize("service", ["detector", "corrector", "reporter"])
def test_workers_start_without_plotting_or_data_frame_libraries(service: str) -> None:
    """The reporter imports matplotlib when it first draws a report, not at start."""
    unused = ("matplotlib", "colour.plotting", "pandas", "OpenImageIO")

    assert modules_loaded_by_serve(service, unused) == []
