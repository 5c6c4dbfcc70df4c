"""``python -m tacro_dev demo``: fire every fixture scenario's hook requests at the service and print the cards.

In-process by default (a fresh app per scenario, its clock set to the scenario's ``asOf`` day at
09:00 UTC, caller authentication off), or against a running service with ``--url``. A running service
reads its own clock, so there every date in the requests is moved by (today - ``asOf``) days, as the
dev EHR moves the charts it loads: a scenario then gets the cards it was written for (``--no-shift``
sends the dates as written).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TextIO

import requests

from cards.vocab import HOOKS
from tacro_dev.fixture_dates import days_to_today, shift_dates
from tacro_dev.fixtures import chosen_scenarios

HOOK_ORDER = HOOKS
Poster = Callable[[str, dict[str, Any]], tuple[int, Any]]


def scenario_clock(as_of: str) -> datetime:
    """The moment a scenario is set in: its asOf day, 09:00 UTC."""
    return datetime.combine(date.fromisoformat(as_of), time(9, 0), tzinfo=UTC)


def today() -> date:
    """Today as a running service sees it (its clock is UTC)."""
    return datetime.now(UTC).date()


def shifted_poster(post: Poster, as_of: str, to: date) -> Poster:
    """``post``, with every date of the body moved from the scenario's ``asOf`` to ``to``."""
    days = days_to_today(date.fromisoformat(as_of), to)

    def shifted(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return post(path, shift_dates(body, days))

    return shifted


def in_process_poster(as_of: str) -> Poster:
    """POST to a fresh in-process app whose clock is the scenario's asOf."""
    from service import create_app

    moment = scenario_clock(as_of)
    app = create_app({"AUTH_REQUIRED": False, "FEEDBACK_DB": "sqlite://", "LOG_LEVEL": "WARNING"}, clock=lambda: moment)
    client = app.test_client()

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = client.post(path, json=body)
        return response.status_code, response.get_json(silent=True)

    return post


def http_poster(base: str, timeout: float = 30.0) -> Poster:
    """POST to a running service at ``base`` (its own clock applies)."""
    session = requests.Session()

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = session.post(base + path, json=body, timeout=timeout)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    return post


def service_ids(discovery: Mapping[str, Any]) -> dict[str, str]:
    """hook -> service id, from a discovery document."""
    return {s["hook"]: s["id"] for s in discovery.get("services") or []}


def format_card(card: Mapping[str, Any]) -> list[str]:
    """A card as a few readable lines: indicator, summary, then each suggestion and its actions."""
    lines = [f"[{str(card.get('indicator', '?')).upper():<8}] {card.get('summary', '(no summary)')}"]
    for s in card.get("suggestions") or []:
        actions = ", ".join(
            f"{a.get('type')} {(a.get('resource') or {}).get('resourceType') or a.get('resourceId') or ''}".strip()
            for a in s.get("actions") or []
        )
        star = " (recommended)" if s.get("isRecommended") else ""
        lines.append(f"             -> {s.get('label')}{star}: {actions or 'no actions'}")
    for link in card.get("links") or []:
        lines.append(f"             link: {link.get('label')} ({link.get('type')})")
    return lines


def run_scenario(
    name: str, root: Path, poster_for: Callable[[str], Poster], ids: Mapping[str, str], out: TextIO
) -> bool:
    """Print one scenario's cards for each of its hooks; False if a call did not answer 200."""
    scenario = json.loads((root / name / "scenario.json").read_text(encoding="utf-8"))
    print(f"\n== {name}: {scenario.get('description', '')}", file=out)
    post = poster_for(scenario["asOf"])
    ok = True
    for hook in HOOK_ORDER:
        path = root / name / "requests" / f"{hook}.json"
        if not path.is_file():
            continue
        if hook not in ids:
            print(f"   {hook}: the service offers no {hook} service", file=out)
            ok = False
            continue
        status, body = post(f"/cds-services/{ids[hook]}", json.loads(path.read_text(encoding="utf-8")))
        if status != 200 or not isinstance(body, dict):
            detail = ""
            if isinstance(body, dict):
                detail = "; ".join(str(i.get("diagnostics")) for i in body.get("issue") or [])
            print(f"   {hook}: HTTP {status} {detail}".rstrip(), file=out)
            ok = False
            continue
        cards = body.get("cards") or []
        print(f"   {hook}: {len(cards)} card(s)" if cards else f"   {hook}: no cards", file=out)
        for card in cards:
            for line in format_card(card):
                print(textwrap.indent(line, "     "), file=out)
    return ok


def run_demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The ``demo`` command."""
    out = out or sys.stdout
    chosen = chosen_scenarios(args)
    if chosen is None:
        return 2
    root, names = chosen
    if args.url:
        base = args.url.rstrip("/")
        if base.endswith("/cds-services"):
            base = base[: -len("/cds-services")]
        try:
            discovery = requests.get(base + "/cds-services", timeout=30).json()
        except (requests.RequestException, ValueError) as exc:
            print(f"cannot read {base}/cds-services: {type(exc).__name__}", file=sys.stderr)
            return 2
        poster = http_poster(base)
        if args.no_shift:
            poster_for: Callable[[str], Poster] = lambda _as_of: poster  # noqa: E731 (one poster for every scenario)
            where = f"{base} (dates as written)"
        else:
            now = today()
            poster_for = lambda as_of: shifted_poster(poster, as_of, now)  # noqa: E731
            where = f"{base} (dates moved to read as of {now})"
    else:
        from service import create_app

        app = create_app({"AUTH_REQUIRED": False, "FEEDBACK_DB": "sqlite://", "LOG_LEVEL": "WARNING"})
        discovery = app.test_client().get("/cds-services").get_json()
        poster_for = in_process_poster
        where = "in-process service (clock: each scenario's asOf, 09:00 UTC)"
    ids = service_ids(discovery)
    print(f"tacro_dev demo: {len(names)} scenario(s) against {where}", file=out)
    failed = [n for n in names if not run_scenario(n, root, poster_for, ids, out)]
    if failed:
        print(f"\n{len(failed)} scenario(s) had calls that did not answer 200: {', '.join(failed)}", file=out)
        return 1
    return 0


def add_parser(sub: Any) -> None:
    """Register ``demo`` on the tacro-cds command line."""
    demo = sub.add_parser(
        "demo",
        help="show the cards for every fixture scenario",
        description="Fire every scenario's CDS Hooks requests (fhir_fixtures/) at the "
        "service and print the cards: indicator, summary, suggestions.",
    )
    demo.add_argument("--url", help="base URL of a running service (default: in-process)")
    demo.add_argument(
        "--no-shift",
        action="store_true",
        help="with --url: send the requests' dates as written (default: moved by today - the scenario's asOf)",
    )
    demo.add_argument("--scenario", action="append", metavar="NAME", help="only this scenario (repeatable)")
    demo.add_argument("--dir", help="fixtures folder (default: the scenarios installed with the service)")
    demo.set_defaults(func=run_demo)
