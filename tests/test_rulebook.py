"""The rulebook: every number of the knowledge base in it and nothing else (compared both ways), the
site's changes and the defaults still to confirm marked, fixture cards under their kind, a hash that
follows the knowledge; signing it changes /readyz; REQUIRE_SIGNED_RULEBOOK stops a live start."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from cards.knowledge import load_knowledge, unconfirmed_entries
from fhir_fixtures import FIXTURES_DIR
from service.cli.main import main as cli_main
from service.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


class _Rows(HTMLParser):
    """The rulebook's number rows (path -> value, status class) and its card rows by kind."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: dict[str, float] = {}
        self.classes: dict[str, str] = {}
        self.kind_rows: list[tuple[str, list[str]]] = []
        self._kind: str | None = None
        self._cells: list[str] = []
        self._in_cell = False
        self.hash = ""
        self._in_hash = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-path"):
            path = str(a["data-path"])
            assert path not in self.numbers, f"{path} listed twice"
            self.numbers[path] = float(str(a["data-value"]))
            self.classes[path] = a.get("class") or ""
        if tag == "tr" and a.get("data-kind"):
            self._kind, self._cells = str(a["data-kind"]), []
        if tag == "td" and self._kind:
            self._in_cell = True
            self._cells.append("")
        if a.get("id") == "knowledge-hash":
            self._in_hash = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        if tag == "tr" and self._kind:
            self.kind_rows.append((self._kind, self._cells))
            self._kind = None
        if tag == "span":
            self._in_hash = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self._cells[-1] += data
        if self._in_hash:
            self.hash += data.strip()


def _knowledge_numbers(node: Any, path: str) -> dict[str, float]:
    """The test's own walk: every int or float (not bool) of the tables, dict keys joined by '.',
    list items as [id] when they carry a string id, else [position]."""
    found: dict[str, float] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            found |= _knowledge_numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            label = item["id"] if isinstance(item, dict) and isinstance(item.get("id"), str) else index
            found |= _knowledge_numbers(item, f"{path}[{label}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        found[path] = float(node)
    return found


def _write(tmp_path: Path, *extra: str, site: Path | None = None) -> _Rows:
    out = tmp_path / "book"
    args = ["rulebook", "--out", str(out), "--fixtures", str(FIXTURES_DIR), *extra]
    if site:
        args += ["--site", str(site)]
    assert cli_main(args) == 0
    rows = _Rows()
    rows.feed((out / "rulebook.html").read_text(encoding="utf-8"))
    return rows


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("TACRO_CDS_FEEDBACK_DB", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("TACRO_CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TACRO_CDS_SITE_CONFIG", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def shipped_book(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rulebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TACRO_CDS_DATA_DIR", str(tmp / "data"))
        mp.delenv("TACRO_CDS_SITE_CONFIG", raising=False)
        return _write(tmp)


def test_the_rulebook_lists_every_number_of_the_knowledge_base_and_no_other(shipped_book):
    knowledge = load_knowledge()
    expected: dict[str, float] = {}
    for name, table in knowledge.items():
        expected |= _knowledge_numbers(table, name)
    assert len(expected) > 150  # the walk found the tables' numbers
    missing = sorted(set(expected) - set(shipped_book.numbers))
    invented = sorted(set(shipped_book.numbers) - set(expected))
    assert not missing, f"numbers of the knowledge base not in the rulebook: {missing}"
    assert not invented, f"rulebook rows that are no number of the knowledge base: {invented}"
    wrong = {p: (shipped_book.numbers[p], v) for p, v in expected.items() if shipped_book.numbers[p] != v}
    assert not wrong


def test_every_unconfirmed_site_default_is_marked(shipped_book):
    pending = unconfirmed_entries(load_knowledge())
    assert pending  # the shipped knowledge leaves numbers for a site to confirm
    for entry in pending:
        table, path = entry.split(": ")
        under = [p for p in shipped_book.numbers if p == f"{table}.{path}" or p.startswith(f"{table}.{path}.")]
        under += [p for p in shipped_book.numbers if p.startswith(f"{table}.{path}[")]
        assert under, f"{entry}: no number listed"
        assert all(shipped_book.classes[p] == "to-confirm" for p in under), entry
    assert shipped_book.classes["protocol.trough.target_high.value"] == ""  # a confirmed number is not marked


def test_each_card_kind_shows_its_fixture_scenarios_with_the_cards_they_produce(shipped_book):
    trough = [cells for kind, cells in shipped_book.kind_rows if kind == "trough"]
    scenarios = {cells[1] for cells in trough}
    assert {"trough-high", "trough-critical"} <= scenarios
    golden = json.loads((FIXTURES_DIR / "trough-high" / "expected" / "patient-view.response.json").read_text())
    high = [cells for cells in trough if cells[1] == "trough-high" and cells[2] == "patient-view"]
    assert [(c[3], c[4]) for c in high] == [(card["indicator"], card["summary"]) for card in golden["cards"]]
    assert any(kind.startswith("interaction:") for kind, _ in shipped_book.kind_rows)


def test_a_site_change_is_marked_and_changes_the_hash(env, shipped_book):
    site = env / "site.yaml"
    site.write_text(yaml.safe_dump({"protocol": {"trough": {"target_high": {"value": 7}}}}), encoding="utf-8")
    changed = _write(env, site=site)
    assert changed.numbers["protocol.trough.target_high.value"] == 7
    assert changed.classes["protocol.trough.target_high.value"] == "changed"
    assert len(changed.hash) == 64 and len(shipped_book.hash) == 64
    assert changed.hash != shipped_book.hash


def test_signing_changes_readyz_and_the_metric(env, make_app, capsys):
    app = make_app(METRICS_OPEN=True, FEEDBACK_DB=f"sqlite:///{env / 'db.sqlite'}")
    client = app.test_client()
    before = client.get("/readyz").get_json()["rulebook"]
    assert (before["status"], before["signedBy"]) == ("unsigned", [])
    assert cli_main(["rulebook", "sign", "--by", "Dr A. Reviewer", "--role", "medication-safety chair"]) == 0
    assert before["hash"] in capsys.readouterr().out
    after = client.get("/readyz").get_json()["rulebook"]
    assert after["status"] == "signed" and after["hash"] == before["hash"]
    assert [(s["name"], s["role"]) for s in after["signedBy"]] == [("Dr A. Reviewer", "medication-safety chair")]
    exposition = client.get("/metrics").get_data(as_text=True)
    assert f'tacro_cds_rulebook_signed{{hash="{before["hash"][:12]}",signed="yes"}} 1.0' in exposition


def test_live_with_the_refusal_setting_and_unsigned_knowledge_does_not_start(env, make_app):
    with pytest.raises(ConfigError) as refused:
        make_app(REQUIRE_SIGNED_RULEBOOK=True)
    said = str(refused.value)
    assert "REQUIRE_SIGNED_RULEBOOK" in said and "unsigned" in said and "site default(s) are unconfirmed" in said
    # Silent everywhere is how a site tries unsigned knowledge: no service runs live.
    assert make_app(REQUIRE_SIGNED_RULEBOOK=True, PILOT_MODES={"*": "silent"})


def test_signed_knowledge_with_every_default_confirmed_starts_live(env, make_app):
    site: dict[str, Any] = {}
    for entry in unconfirmed_entries(load_knowledge()):
        table, path = entry.split(": ")
        node = site.setdefault(table, {})
        for part in path.split("."):
            node = node.setdefault(part, {})
        node["site_default"] = False
    site_file = env / "confirmed.yaml"
    site_file.write_text(yaml.safe_dump(site), encoding="utf-8")
    with pytest.raises(ConfigError, match="unsigned"):
        make_app(REQUIRE_SIGNED_RULEBOOK=True, SITE_CONFIG=str(site_file))
    assert cli_main(["rulebook", "sign", "--site", str(site_file), "--by", "Dr B", "--role", "chair"]) == 0
    app = make_app(
        REQUIRE_SIGNED_RULEBOOK=True, SITE_CONFIG=str(site_file), FEEDBACK_DB=f"sqlite:///{env / 'db.sqlite'}"
    )
    assert app.test_client().get("/readyz").get_json()["rulebook"]["status"] == "signed"


def test_serve_refuses_live_on_unsigned_knowledge_and_says_why(tmp_path):
    """The real start command: gunicorn's master checks once and stops before any worker."""
    import os
    import subprocess
    import sys

    from review_support import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("TACRO_CDS_")}
    env |= {"TACRO_CDS_DATA_DIR": str(tmp_path / "data"), "TACRO_CDS_REQUIRE_SIGNED_RULEBOOK": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "serve", "--port", str(free_port()), "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    said = done.stderr
    assert "REQUIRE_SIGNED_RULEBOOK" in said and "is unsigned" in said and "site default(s) are unconfirmed" in said


def test_start_up_says_the_hash_and_whether_it_is_signed(env, make_app):
    import logging

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    collect = Collect()
    logging.getLogger("tacro_cds").addHandler(collect)
    try:
        db = f"sqlite:///{env / 'db.sqlite'}"
        make_app(FEEDBACK_DB=db)
        assert cli_main(["rulebook", "sign", "--by", "Dr C", "--role", "pharmacist"]) == 0
        make_app(FEEDBACK_DB=db)
    finally:
        logging.getLogger("tacro_cds").removeHandler(collect)
    said = [m for m in collect.messages if m.startswith("rulebook: ")]
    assert re.fullmatch(r"rulebook: knowledge [0-9a-f]{64} unsigned", said[0])
    assert re.fullmatch(r"rulebook: knowledge [0-9a-f]{64} signed by Dr C \(pharmacist\) .*", said[1])
