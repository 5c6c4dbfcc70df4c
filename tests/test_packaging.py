"""What an installed distribution carries: its licence and metadata."""

from __future__ import annotations

import configparser
from pathlib import Path

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
