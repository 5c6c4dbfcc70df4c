"""The rulebook: one printable HTML document of what the service decides and with which numbers.

Built from the effective knowledge (the shipped tables with the site file merged) and the rules' own
descriptions: every check and its card kinds, every number with its value, unit, source and status
(shipped, changed by the site, or a site default still to confirm), the interaction table, the codes
recognised, and the fixture scenarios that show each card kind with the cards they produce. It
carries a content hash of the effective knowledge; a sign-off names that hash, so a changed number is
an unsigned rulebook (the hash and the sign-off check live in ``service.review.rulebook_state``).
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from cards import evaluate as evaluate_module
from cards import vocab
from cards.knowledge import LoadedKnowledge, shipped_tables, unconfirmed_entries
from cards.rules import data_quality
from service.review.rulebook_state import knowledge_hash

# What a number is, when it is not a {value, unit, source} entry: these keys carry the source of
# every number below them.
_SOURCE_KEYS = ("source", "sources", "citation")
SHIPPED, CHANGED, TO_CONFIRM, SITE_ADDED = (
    "shipped",
    "changed by the site",
    "site default: to confirm",
    "added by the site",
)


@dataclass(frozen=True)
class Number:
    """One number of the knowledge base as the rulebook lists it."""

    path: str  # "protocol.trough.target_high.value", list items by id or position: "entries[azole-...]"
    value: float
    unit: str | None
    source: str
    status: str


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _item_label(item: Any, index: int) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        return str(item["id"])
    return str(index)


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any, list[Mapping[str, Any]]]]:
    """Every numeric leaf with its path and the mappings above it (nearest last)."""
    yield from _leaves(node, path, [])


def _leaves(node: Any, path: str, above: list[Mapping[str, Any]]) -> Iterator[tuple[str, Any, list[Mapping[str, Any]]]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key), [*above, node])
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _leaves(item, f"{path}[{_item_label(item, index)}]", above)
    elif _is_number(node):
        yield path, node, above


def _source(above: list[Mapping[str, Any]], protocol_sources: Mapping[str, Any]) -> str:
    for node in reversed(above):
        for key in _SOURCE_KEYS:
            value = node.get(key)
            if isinstance(value, list) and value:
                return "; ".join(str(v) for v in value)
            if isinstance(value, str) and value:
                cited = protocol_sources.get(value)
                if isinstance(cited, Mapping) and cited.get("citation"):
                    return f"{value}: {cited['citation']}"
                return value
    return "—"


def numbers(tables: Mapping[str, Any]) -> list[Number]:
    """Every number of the effective knowledge, with its unit, source and status."""
    shipped = {path: value for name, table in shipped_tables().items() for path, value, _ in leaves(table, name)}
    protocol_sources = (tables.get("protocol") or {}).get("sources") or {}
    found: list[Number] = []
    for name in sorted(tables):
        for path, value, above in leaves(tables[name], name):
            unit = next((str(n["unit"]) for n in reversed(above) if n.get("unit") is not None), None)
            if any(n.get("site_default") is True for n in above):
                status = TO_CONFIRM
            elif path not in shipped:
                status = SITE_ADDED
            elif shipped[path] != value:
                status = CHANGED
            else:
                status = SHIPPED
            found.append(Number(path, value, unit, _source(above, protocol_sources), status))
    return found


@dataclass(frozen=True)
class Code:
    section: str
    concept: str
    system: str
    code: str
    display: str


def codes(table: Mapping[str, Any]) -> list[Code]:
    """Every code the knowledge recognises: codings (system and code), drugs' RxNorm codes, product
    codes, vaccine codes."""
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    found: list[Code] = []

    def walk(node: Any, section: str, concept: str, system: str | None) -> None:
        if isinstance(node, Mapping):
            system = str(node.get("system", system or "")) or system
            if "code" in node and isinstance(node["code"], str):
                found.append(Code(section, concept, system or "", node["code"], str(node.get("display", ""))))
            for key, value in node.items():
                if key in ("system", "code"):
                    continue
                walk(value, section, concept or str(key), system)
        elif isinstance(node, list):
            for item in node:
                walk(item, section, concept, system)

    for section, value in table.items():
        if section == "drugs":
            for key, drug in value.items():
                for code in drug.get("rxnorm") or []:
                    found.append(Code(section, key, rxnorm, str(code), ", ".join(drug.get("names") or [])))
        elif section == "products":
            for product in value:
                found.append(
                    Code(section, "tacrolimus product", rxnorm, str(product["rxnorm"]), str(product.get("display", "")))
                )
        else:
            walk(value, section, "", None)
    return found


@dataclass
class ScenarioCard:
    scenario: str
    description: str
    hook: str
    indicator: str
    summary: str
    suggestions: list[str] = field(default_factory=list)


@dataclass
class ScenarioRun:
    """One fixture scenario's request for one hook and the cards the rules answered, with kinds."""

    scenario: str
    description: str
    hook: str
    cards: list[tuple[str, ScenarioCard]]
    refused: str | None = None


def run_fixtures(folder: Path, knowledge: Mapping[str, Any]) -> list[ScenarioRun]:
    """Every scenario in ``folder``, every hook's request, answered by the rules at the scenario's
    date (its ``asOf``, 09:00 UTC) with the given knowledge."""
    from service.config import default_settings
    from service.hooks import pipeline
    from service.hooks.prefetch import PrefetchResolver
    from service.hooks.registry import build_registry
    from service.hooks.templates import prefetch_templates
    from service.runtime import Runtime

    settings = default_settings()
    registry = build_registry(prefetch_templates(knowledge))
    by_hook = {s.hook: s.id for s in registry}
    runs: list[ScenarioRun] = []
    for scenario in sorted(p for p in folder.iterdir() if (p / "scenario.json").is_file()):
        about = json.loads((scenario / "scenario.json").read_text(encoding="utf-8"))
        description = str(about.get("description", ""))
        as_of = datetime.combine(datetime.fromisoformat(about["asOf"]).date(), time(9), UTC)
        rt = Runtime(
            settings=settings,
            knowledge=knowledge,
            registry=registry,
            resolver=PrefetchResolver(settings),
            verifier=None,
            store=None,
            clock=_fixed(as_of),
            new_uuid=_counting(),
        )
        for hook in sorted(by_hook):
            request_file = scenario / "requests" / f"{hook}.json"
            if not request_file.is_file():
                continue
            body = json.loads(request_file.read_text(encoding="utf-8"))
            try:
                _, answer, kinds = pipeline.invoke(rt, by_hook[hook], body)
            except Exception as exc:  # a scenario the rules refuse is shown as such, not hidden
                runs.append(ScenarioRun(scenario.name, description, hook, [], f"{type(exc).__name__}: {exc}"))
                continue
            cards = [
                (
                    kind,
                    ScenarioCard(
                        scenario.name,
                        description,
                        hook,
                        card["indicator"],
                        card["summary"],
                        [s.get("label", "") for s in card.get("suggestions") or []],
                    ),
                )
                for kind, card in zip(kinds, answer["cards"], strict=True)
            ]
            runs.append(ScenarioRun(scenario.name, description, hook, cards))
    return runs


def fixture_cards(folder: Path, knowledge: Mapping[str, Any]) -> dict[str, list[ScenarioCard]]:
    """Card kind -> the fixture scenarios' cards of that kind; "(refused)" -> requests answered
    with an error."""
    shown: dict[str, list[ScenarioCard]] = {}
    for run in run_fixtures(folder, knowledge):
        if run.refused:
            shown.setdefault("(refused)", []).append(
                ScenarioCard(run.scenario, run.description, run.hook, "—", run.refused)
            )
        for kind, card in run.cards:
            shown.setdefault(kind, []).append(card)
    return shown


def evidence_table(folder: Path, knowledge: Mapping[str, Any]) -> str:
    """The fixture scenarios and their results as a Markdown table (docs/intended-use.md carries it;
    a test regenerates it): per scenario and hook, each card's indicator and kind, or "no card"."""
    rows: dict[str, dict[str, str]] = {}
    described: dict[str, str] = {}
    hooks: list[str] = []
    for run in run_fixtures(folder, knowledge):
        described[run.scenario] = run.description
        if run.hook not in hooks:
            hooks.append(run.hook)
        if run.refused:
            text = "refused"
        else:
            text = "; ".join(f"{card.indicator} {kind}" for kind, card in run.cards) or "no card"
        rows.setdefault(run.scenario, {})[run.hook] = text
    lines = [
        "| Scenario | What the chart holds | " + " | ".join(hooks) + " |",
        "|---|---|" + "---|" * len(hooks),
    ]
    for scenario in sorted(rows):
        about = described[scenario].replace("|", "/")
        cells = " | ".join(rows[scenario].get(hook, "—") for hook in hooks)
        lines.append(f"| `{scenario}` | {about} | {cells} |")
    return "\n".join(lines) + "\n"


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _counting() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


@dataclass(frozen=True)
class Check:
    """One rule as the rulebook describes it: what it checks, when it fires, the data it needs."""

    name: str
    module: str
    description: str
    needs: tuple[str, ...]


def checks() -> list[Check]:
    """Every rule in the order the service runs them, described by its own module's text."""
    found = []
    for spec in evaluate_module.RULES:
        module = inspect.getmodule(spec.rule)
        found.append(
            Check(
                name=spec.check,
                module=module.__name__.rsplit(".", 1)[-1] if module else "",
                description=inspect.cleandoc((module.__doc__ if module else "") or ""),
                needs=tuple(sorted(spec.needs)),
            )
        )
    found.append(
        Check(
            name="data the rules could not use",
            module="data_quality",
            description=inspect.cleandoc(data_quality.__doc__ or ""),
            needs=(),
        )
    )
    return found


def family(kind: str) -> str:
    return kind.split(":", 1)[0]


# The card family each rule module issues: a module is named for its family (snake case).
_RULE_FAMILIES = {family.replace("-", "_"): family for family in vocab.CARD_FAMILIES} | {
    "interactions": vocab.FAMILY_INTERACTION
}


@dataclass
class Rulebook:
    knowledge_hash: str
    generated: str
    site_file: str | None
    checks: list[Check]
    kinds_by_check: dict[str, list[str]]
    shown: dict[str, list[ScenarioCard]]
    numbers: list[Number]
    unconfirmed: tuple[str, ...]
    changes: list[str]
    interactions: list[Mapping[str, Any]]
    care_cards: list[Mapping[str, Any]]
    codes: list[Code]
    signoffs: list[Any] = field(default_factory=list)


def build(
    loaded: LoadedKnowledge,
    *,
    site_file: str | None = None,
    fixtures: Path | None = None,
    now: datetime | None = None,
    signoffs: list[Any] | None = None,
) -> Rulebook:
    """The rulebook of ``loaded`` (``fixtures``: a folder of fixture scenarios to run, or None)."""
    tables = loaded.tables
    shown = fixture_cards(fixtures, tables) if fixtures is not None else {}
    all_checks = checks()
    kinds_by_check: dict[str, list[str]] = {}
    for check in all_checks:
        wanted = _RULE_FAMILIES.get(check.module)
        kinds_by_check[check.name] = sorted(
            k
            for k in shown
            if family(k) == wanted or (wanted == vocab.FAMILY_DATA_QUALITY and family(k) == vocab.FAMILY_MISSING_DATA)
        )
    return Rulebook(
        knowledge_hash=knowledge_hash(tables),
        generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        site_file=site_file,
        checks=all_checks,
        kinds_by_check=kinds_by_check,
        shown=shown,
        numbers=numbers(tables),
        unconfirmed=unconfirmed_entries(tables),
        changes=[str(c) for c in loaded.changes],
        interactions=list((tables.get("interactions") or {}).get("entries") or []),
        care_cards=list((tables.get("care") or {}).get("cards") or []),
        codes=codes(tables.get("codes") or {}),
        signoffs=signoffs or [],
    )


def render(book: Rulebook) -> str:
    """The rulebook as one self-contained HTML page (its styles inline, printable)."""
    env = Environment(loader=PackageLoader("service.review", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["num"] = _num
    env.filters["unit"] = unit_words
    return env.get_template("review/rulebook.html").render(book=book, TO_CONFIRM=TO_CONFIRM, SHIPPED=SHIPPED)


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_UNIT_WORDS = {"a": "years", "d": "days", "h": "hours", "mg/d": "mg/day", "{ratio}": ""}


def unit_words(unit: str | None) -> str:
    """A UCUM unit as a reader says it ("d" -> "days"); others as they are."""
    return _UNIT_WORDS.get(unit or "", unit or "")


def confirm_list(tables: Mapping[str, Any]) -> str:
    """The site defaults still to confirm as a Markdown list (docs/intended-use.md carries it; a test
    regenerates it): each entry, its value and why the literature does not settle it."""
    lines = []
    for entry in unconfirmed_entries(tables):
        table, path = entry.split(": ", 1)
        node: Any = tables[table]
        for part in path.split("."):
            node = node[part]
        if "value" in node:
            unit = _UNIT_WORDS.get(str(node.get("unit")), node.get("unit"))
            value = f"{_num(node['value'])}{' ' + str(unit) if unit else ''}"
        elif "table" in node:
            value = "the table of " + str(len(node["table"])) + " bands"
        else:
            value = ", ".join(f"{k} {_num(v)}" for k, v in node.items() if _is_number(v)) or "see the rulebook"
        why = " ".join(str(node.get("note") or node.get("source") or "").split())
        lines.append(f"- `{table}.{path}` (now {value}): {why}")
    return "\n".join(lines) + "\n"
