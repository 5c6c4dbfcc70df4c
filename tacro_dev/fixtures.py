"""``python -m tacro_dev fixtures load``: upload the synthetic scenarios of ``fhir_fixtures/`` to a FHIR server.

Each scenario's ``patient.json`` is a transaction Bundle of PUTs with stable ids, so loading twice
leaves the server as loading once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

import requests

from tacro_dev.fixture_dates import days_to_today, shift_dates

# The scenarios ship as package data of ``fhir_fixtures``, so an installed service can load and demo
# them as well as a checkout.
DEFAULT_DIR = Path(str(files("fhir_fixtures")))
TIMEOUT_S = 30.0


class LoadError(Exception):
    """A scenario could not be loaded; the message says why (the caller names the scenario)."""


class ServerUnreachable(LoadError):
    """No answer from the FHIR server at all: loading the other scenarios is pointless."""


def fixtures_dir(explicit: str | None = None) -> Path:
    """The fixtures folder: --dir, else $TACRO_CDS_FIXTURES_DIR, else the installed fhir_fixtures package."""
    path = Path(explicit or os.environ.get("TACRO_CDS_FIXTURES_DIR") or DEFAULT_DIR)
    if not path.is_dir():
        raise LoadError(f"fixtures folder {path} does not exist (use --dir)")
    return path


def scenario_names(root: Path, only: list[str] | None = None) -> list[str]:
    """Scenario folders (those with a patient.json), optionally restricted to ``only``."""
    names = sorted(p.parent.name for p in root.glob("*/patient.json"))
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise LoadError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in only]
    return names


def _outcome_text(body: Any) -> str:
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return "; ".join(str(i.get("diagnostics") or i.get("code")) for i in body.get("issue") or [])[:500]
    return ""


def load_scenario(session: requests.Session, base: str, bundle: dict[str, Any]) -> int:
    """POST one transaction Bundle; return the number of resources written."""
    try:
        response = session.post(
            base,
            json=bundle,
            timeout=TIMEOUT_S,
            headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
        )
    except requests.ConnectionError:
        raise ServerUnreachable(f"cannot reach the FHIR server at {base} (is it running?)") from None
    except requests.Timeout:
        raise LoadError(f"the FHIR server at {base} did not answer within {TIMEOUT_S:g} s") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code in (401, 403):
        raise LoadError(
            f"the FHIR server refused the upload ({response.status_code}): "
            f"{'check --token' if 'Authorization' in session.headers else 'it needs --token'}"
        )
    if response.status_code >= 300 or not isinstance(body, dict):
        raise LoadError(f"HTTP {response.status_code}: {_outcome_text(body) or 'not a FHIR response'}")
    entries = body.get("entry") or []
    failed = [e for e in entries if not str((e.get("response") or {}).get("status", "")).startswith("2")]
    if body.get("type") != "transaction-response" or len(entries) != len(bundle.get("entry") or []) or failed:
        raise LoadError(f"unexpected transaction response ({len(failed)} failed entries)")
    return len(entries)


def scenario_shift(root: Path, name: str, today: date) -> int:
    """Days from a scenario's ``asOf`` to ``today`` (0 when it has no asOf)."""
    path = root / name / "scenario.json"
    if not path.is_file():
        return 0
    as_of = json.loads(path.read_text(encoding="utf-8")).get("asOf")
    return days_to_today(date.fromisoformat(as_of), today) if isinstance(as_of, str) else 0


def load_all(
    base: str,
    token: str | None,
    root: Path,
    names: list[str],
    out: TextIO | None = None,
    *,
    shift_to: date | None = None,
) -> int:
    """Load the scenarios in order; return the number that failed (stops at an unreachable server).
    With ``shift_to``, every date of a scenario moves by ``shift_to`` − its ``asOf``."""
    out = out or sys.stdout
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    failures = 0
    for i, name in enumerate(names, 1):
        prefix = f"[{i:>2}/{len(names)}] {name:<28}"
        bundle = json.loads((root / name / "patient.json").read_text(encoding="utf-8"))
        if shift_to is not None:
            bundle = shift_dates(bundle, scenario_shift(root, name, shift_to))
        try:
            written = load_scenario(session, base, bundle)
        except ServerUnreachable as exc:
            print(f"{prefix} FAILED: {exc}", file=out, flush=True)
            return failures + len(names) - i + 1
        except LoadError as exc:
            print(f"{prefix} FAILED: {exc}", file=out, flush=True)
            failures += 1
            continue
        print(f"{prefix} ok ({written} resources)", file=out, flush=True)
    return failures


def chosen_scenarios(args: argparse.Namespace) -> tuple[Path, list[str]] | None:
    """The fixtures folder and the scenarios ``--dir``/``--scenario`` select; None (said on stderr)
    when they do not exist."""
    try:
        root = fixtures_dir(args.dir)
        return root, scenario_names(root, args.scenario)
    except LoadError as exc:
        print(str(exc), file=sys.stderr)
        return None


def run_load(args: argparse.Namespace) -> int:
    """The ``fixtures load`` command."""
    base = args.fhir_server.rstrip("/")
    if not base.startswith(("http://", "https://")):
        print(f"--fhir-server must be an http(s) URL, not {args.fhir_server!r}", file=sys.stderr)
        return 2
    chosen = chosen_scenarios(args)
    if chosen is None:
        return 2
    root, names = chosen
    print(f"loading {len(names)} scenario(s) into {base}", file=sys.stdout, flush=True)
    failures = load_all(
        base,
        args.token or os.environ.get("TACRO_CDS_FHIR_TOKEN"),
        root,
        names,
        shift_to=date.today() if args.shift_dates else None,
    )
    if failures:
        print(f"{failures} of {len(names)} scenario(s) not loaded", file=sys.stderr)
        return 1
    print(f"all {len(names)} scenario(s) loaded", flush=True)
    return 0


def add_parser(sub: Any) -> None:
    """Register ``fixtures load`` on the tacro-cds command line."""
    fixtures = sub.add_parser(
        "fixtures",
        help="synthetic FHIR test patients",
        description="Work with the synthetic patients in fhir_fixtures/.",
    )
    fsub = fixtures.add_subparsers(dest="fixtures_command", required=True)
    load = fsub.add_parser(
        "load",
        help="upload the scenarios to a FHIR server (idempotent)",
        description="POST each scenario's transaction Bundle (PUTs with stable ids) to "
        "the FHIR server; running it again changes nothing.",
    )
    load.add_argument(
        "--fhir-server", required=True, metavar="URL", help="FHIR base URL, e.g. http://127.0.0.1:8090/fhir"
    )
    load.add_argument("--token", help="bearer token for the FHIR server (default $TACRO_CDS_FHIR_TOKEN)")
    load.add_argument(
        "--scenario", action="append", metavar="NAME", help="load only this scenario (repeatable); default: all"
    )
    load.add_argument("--dir", help="fixtures folder (default: the scenarios installed with the service)")
    load.add_argument(
        "--shift-dates",
        action="store_true",
        help="move every date by today − the scenario's asOf, so the charts read as of today",
    )
    load.set_defaults(func=run_load)
