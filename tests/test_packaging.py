"""What an installed distribution carries: its licence and metadata."""

from __future__ import annotations

import ast
import configparser
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

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


def test_fixture_scenarios_ship_as_package_data():
    """Every scenario file is matched by a package-data pattern, so an installed service can demo."""
    from service.fixtures_cli import fixtures_dir, scenario_names

    root = fixtures_dir()
    assert root == ROOT / "fhir_fixtures"
    names = scenario_names(root)
    assert len(names) > 30 and "trough-low" in names
    patterns = _package_data("fhir_fixtures")
    packages = _setup_cfg()["options.packages.find"]["include"].split()
    assert "fhir_fixtures" in packages
    data_files = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert data_files
    shipped = {path for pattern in patterns for path in root.glob(pattern)}  # as setuptools globs them
    unmatched = [str(p.relative_to(root)) for p in data_files if p not in shipped]
    assert not unmatched


def _requirements(lines: str) -> list[Requirement]:
    return [Requirement(line.strip()) for line in lines.split("\n") if line.strip() and not line.strip().startswith("#")]


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
    unbounded = [str(r) for text in groups.values() for r in _requirements(text)
                 if not any(spec.operator in ("<", "<=", "==", "~=") for spec in r.specifier)]
    assert not unbounded


def test_lock_file_pins_every_runtime_dependency_within_its_bounds():
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").split("\n"):
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split(" ")[0].split("==")
            pinned[canonicalize_name(name)] = version
    cfg = _setup_cfg()
    wanted = _requirements(cfg["options"]["install_requires"]) + _requirements(cfg["options.extras_require"]["postgres"])
    for requirement in wanted:
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(version), f"requirements.lock pins {requirement.name}=={version}"
    assert "--require-hashes -r requirements.lock" in (ROOT / "Dockerfile").read_text(encoding="utf-8")
