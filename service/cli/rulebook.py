"""``tacro-cds rulebook [--site FILE] --out DIR``: write the rulebook (one printable HTML page) of the
effective knowledge; ``tacro-cds rulebook sign --by NAME --role ROLE``: record a sign-off of its hash
in the service's database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cards.knowledge import KnowledgeError, LoadedKnowledge, load_knowledge_report
from service.config import data_directory, database_url, load_settings
from service.review import rulebook, rulebook_state
from service.storage.pilot import PilotRecords
from service.storage.store import Store

FILE_NAME = "rulebook.html"


def _loaded(args: argparse.Namespace) -> tuple[LoadedKnowledge, str | None]:
    settings = load_settings()
    site = args.site or settings.site_config
    return load_knowledge_report(site, settings.rxnorm_products), str(site) if site else None


def _records() -> tuple[Store, PilotRecords]:
    settings = load_settings()
    store = Store(database_url(settings, data_directory(settings)), auto_upgrade=settings.db_auto_upgrade)
    return store, PilotRecords(store)


def _write(args: argparse.Namespace) -> int:
    if args.out is None:
        print("tacro-cds rulebook: --out DIR is required (or: rulebook sign --by NAME --role ROLE)", file=sys.stderr)
        return 2
    try:
        loaded, site = _loaded(args)
    except KnowledgeError as exc:
        print(f"tacro-cds rulebook: {exc}", file=sys.stderr)
        return 1
    fixtures = args.fixtures
    if fixtures is None and Path("fhir_fixtures").is_dir():
        fixtures = Path("fhir_fixtures")  # a checkout: its scenarios show the cards
    signoffs = []
    if args.with_signoffs:
        store, records = _records()
        try:
            signoffs = records.signoffs(rulebook_state.knowledge_hash(loaded.tables))
        finally:
            store.dispose()
    book = rulebook.build(loaded, site_file=site, fixtures=fixtures, signoffs=signoffs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / FILE_NAME).write_text(rulebook.render(book), encoding="utf-8")
    print(f"{out / FILE_NAME}: {len(book.numbers)} numbers, {len(book.unconfirmed)} to confirm")
    print(f"knowledge hash {book.knowledge_hash}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    try:
        loaded, _ = _loaded(args)
    except KnowledgeError as exc:
        print(f"tacro-cds rulebook sign: {exc}", file=sys.stderr)
        return 1
    digest = rulebook_state.knowledge_hash(loaded.tables)
    store, records = _records()
    try:
        signed = records.sign(digest, by=args.by, role=args.role)
    finally:
        store.dispose()
    print(f"signed {digest} by {signed.signed_by} ({signed.role}) at {signed.signed_at.isoformat(timespec='seconds')}Z")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "rulebook",
        help="write the rulebook of the effective knowledge, or sign it off",
        description=__doc__,
    )
    parser.add_argument("--site", type=Path, help="site file (default: SITE_CONFIG)")
    parser.add_argument("--out", type=Path, help=f"folder to write {FILE_NAME} into")
    parser.add_argument(
        "--fixtures", type=Path, help="folder of fixture scenarios to show (default: ./fhir_fixtures when present)"
    )
    parser.add_argument(
        "--with-signoffs", action="store_true", help="list the sign-offs of this hash recorded in the database"
    )
    parser.set_defaults(func=_write)
    actions = parser.add_subparsers(dest="action")
    sign = actions.add_parser("sign", help="record a sign-off of the effective knowledge's hash")
    sign.add_argument("--by", required=True, help="who signs (name)")
    sign.add_argument("--role", required=True, help="in what role (e.g. chair, medication-safety committee)")
    sign.add_argument("--site", type=Path, default=argparse.SUPPRESS, help="site file (default: SITE_CONFIG)")
    sign.set_defaults(func=_sign)
