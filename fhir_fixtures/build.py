"""Build the fixtures: ``python -m fhir_fixtures.build [--check]``.

1. Each recipe of ``fhir_fixtures.scenarios`` becomes ``<scenario>/patient.json`` and
   ``<scenario>/scenario.json``.
2. For every scenario folder (recipe-made or hand-written) and every hook in its scenario.json,
   ``requests/<hook>.json`` is built: the context, and a prefetch for every key the service
   declares in discovery, answered by ``fhir_fixtures.matcher`` over the patient's bundle exactly
   as a FHIR server would answer the substituted template.

``--check`` writes nothing and exits 1 when a committed file differs from what would be built
(e.g. after the service's prefetch templates changed).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import FIXTURES_DIR, HOOKS, scenario_dirs
from .matcher import search, substitute
from .scenarios import build_all

NAMESPACE = uuid.UUID("6f1b0c56-8f3e-4c55-9a61-2d7d6c1f0a11")


def dumps(data: Any) -> str:
    """Stable, diff-friendly JSON."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def declared_templates() -> dict[str, dict[str, str]]:
    """hook -> prefetch templates, as the service's discovery declares them."""
    from service import create_app

    app = create_app({"AUTH_REQUIRED": False, "FEEDBACK_DB": "sqlite://", "LOG_LEVEL": "WARNING"})
    services = app.test_client().get("/cds-services").get_json()["services"]
    return {s["hook"]: dict(s.get("prefetch") or {}) for s in services}


def bundle_resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]


def build_request(
    scenario: str, hook: str, context: Mapping[str, Any], templates: Mapping[str, str], resources: list[dict[str, Any]]
) -> dict[str, Any]:
    """One complete CDS Hooks request (no fhirServer: the prefetch holds everything)."""
    prefetch = {key: search(substitute(query, context), resources) for key, query in templates.items()}
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid5(NAMESPACE, f"{scenario}/{hook}")),
        "context": dict(context),
        "prefetch": prefetch,
    }


def planned_files(root: Path = FIXTURES_DIR) -> dict[Path, str]:
    """Every file the build produces, with its content."""
    files: dict[Path, str] = {}
    for s in build_all():
        files[root / s.name / "patient.json"] = dumps(s.patient_bundle())
        files[root / s.name / "scenario.json"] = dumps(s.scenario_file())
    templates = declared_templates()
    names = {p.parent.name for p in files} | {d.name for d in scenario_dirs(root)}
    for name in sorted(names):
        folder = root / name
        patient = files.get(folder / "patient.json") or (folder / "patient.json").read_text(encoding="utf-8")
        scenario = files.get(folder / "scenario.json") or (folder / "scenario.json").read_text(encoding="utf-8")
        resources = bundle_resources(json.loads(patient))
        for hook, spec in json.loads(scenario)["hooks"].items():
            if hook not in HOOKS:
                raise ValueError(f"{name}/scenario.json: unknown hook {hook!r}")
            request = build_request(name, hook, spec["context"], templates[hook], resources)
            files[folder / "requests" / f"{hook}.json"] = dumps(request)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fhir_fixtures.build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything is stale")
    args = parser.parse_args(argv)
    files = planned_files()
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    planned_requests = {p for p in files if p.parent.name == "requests"}
    orphans = [p for d in scenario_dirs() for p in (d / "requests").glob("*.json") if p not in planned_requests]
    if args.check:
        for p in stale + orphans:
            print(f"stale: {p.relative_to(FIXTURES_DIR)}", file=sys.stderr)
        if stale or orphans:
            print("run `python -m fhir_fixtures.build` and commit the result", file=sys.stderr)
            return 1
        return 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p], encoding="utf-8")
    for p in orphans:
        p.unlink()
    print(f"{len(files)} files, {len(stale)} written, {len(orphans)} removed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
