"""What an installed distribution carries: its licence and metadata."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def test_licence_is_apache_2_in_file_and_metadata():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    metadata = _setup_cfg()["metadata"]
    assert metadata["license"] == "Apache-2.0"
    assert "LICENSE" in metadata["license_files"].split()
    # The licence is the SPDX expression above; setuptools deprecates "License ::" classifiers
    # beside it (PEP 639).
    assert not [c for c in metadata["classifiers"].split("\n") if c.startswith("License ::")]


def _package_data(package: str) -> list[str]:
    raw = _setup_cfg()["options.package_data"][package]
    return [pattern.strip() for pattern in raw.split(",") if pattern.strip()]


def _requirements(lines: str) -> list[Requirement]:
    return [
        Requirement(line.strip()) for line in lines.split("\n") if line.strip() and not line.strip().startswith("#")
    ]


def _imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> the first file importing it, over service/ and cards/ (absolute imports)."""
    found: dict[str, str] = {}
    for package in ("service", "cards"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_a_declared_dependency():
    declared = {canonicalize_name(r.name) for r in _requirements(_setup_cfg()["options"]["install_requires"])}
    distributions = packages_distributions()
    own = {"service", "cards", "fhir_fixtures"}
    undeclared = {}
    for module, where in _imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in own:
            continue
        providers = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not providers & declared:
            undeclared[module] = (where, sorted(providers))
    assert not undeclared


def test_every_direct_dependency_has_an_upper_bound():
    cfg = _setup_cfg()
    groups = {"install_requires": cfg["options"]["install_requires"], **dict(cfg["options.extras_require"])}
    unbounded = [
        str(r)
        for text in groups.values()
        for r in _requirements(text)
        if not any(spec.operator in ("<", "<=", "==", "~=") for spec in r.specifier)
    ]
    assert not unbounded


def test_lock_file_pins_every_runtime_dependency_within_its_bounds():
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").split("\n"):
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split(" ")[0].split("==")
            pinned[canonicalize_name(name)] = version
    cfg = _setup_cfg()
    wanted = _requirements(cfg["options"]["install_requires"]) + _requirements(
        cfg["options.extras_require"]["postgres"]
    )
    for requirement in wanted:
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(version), f"requirements.lock pins {requirement.name}=={version}"
    assert "--require-hashes -r requirements.lock" in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_migration_scripts_ship_with_the_package():
    """Alembic reads env.py, the revisions and the revision template from the installed package:
    each is in a package setuptools finds, or matched by a package-data pattern."""
    root = ROOT / "service" / "storage"
    files = [p for p in (root / "migrations").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert {"env.py", "script.py.mako", "0001_baseline.py"} <= {p.name for p in files}
    include = _setup_cfg()["options.packages.find"]["include"].split()
    shipped = {path for pattern in _package_data("service") for path in (ROOT / "service").glob(pattern)}
    missing = []
    for path in files:
        if path.suffix == ".py":
            package = ".".join(path.parent.relative_to(ROOT).parts)
            in_package = (path.parent / "__init__.py").is_file() and any(
                fnmatch.fnmatchcase(package, pattern) for pattern in include
            )
            if not in_package:
                missing.append(str(path.relative_to(ROOT)))
        elif path not in shipped:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing


@pytest.mark.slow
def test_a_service_installed_without_its_checkout_migrates_a_database(tmp_path):
    """A wheel built from the sources (as `pip install .` builds it), installed apart from the
    checkout, runs `tacro-cds db upgrade` on a new database and then finds it up to date."""
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for folder in ("service", "cards", "fhir_fixtures", "tacro_dev"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next((tmp_path / "dist").glob("tacro_cds-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    database = tmp_path / "db" / "store.sqlite"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TACRO_CDS_")},
        "PYTHONPATH": str(tmp_path / "site"),
        "TACRO_CDS_FEEDBACK_DB": f"sqlite:///{database}",
        "TACRO_CDS_DATA_DIR": str(tmp_path / "data"),
    }
    script = (
        "import sys, service; from service.cli.main import main; print(service.__file__); sys.exit(main(sys.argv[1:]))"
    )

    def tacro_cds(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    upgraded = tacro_cds("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith(str(tmp_path / "site" / "service"))  # not the checkout's copy
    assert "upgraded from an empty database to revision" in upgraded.stdout
    status = tacro_cds("db", "status")
    assert status.returncode == 0 and "this release needs" in status.stdout, status.stderr
    # The development tools and their synthetic patients stay in the checkout.
    assert {p.name for p in (tmp_path / "site").iterdir()} >= {"service", "cards"}
    for dev_only in ("tacro_dev", "fhir_fixtures"):
        assert not (tmp_path / "site" / dev_only).exists()
        imported = subprocess.run(
            [sys.executable, "-c", f"import {dev_only}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert imported.returncode != 0 and "ModuleNotFoundError" in imported.stderr


def test_the_image_builds_the_service_with_the_locked_build_backend():
    """The second install builds the service itself: with build isolation pip would fetch
    setuptools and wheel unpinned and unhashed; the lock pins them instead."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    install = [line for line in dockerfile.splitlines() if "pip install" in line and "'.[postgres]'" in line]
    assert install and all("--no-build-isolation" in line and "--no-deps" in line for line in install)
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    for name in ("setuptools", "wheel"):
        pinned = re.search(rf"^{name}==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{{64}}", lock, re.MULTILINE)
        assert pinned, f"{name} is not pinned with a hash in requirements.lock"
