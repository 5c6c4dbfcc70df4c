"""``python -m tacro_dev``: the development tools' command line (demo, fixtures, dev-ehr)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from service.config import ConfigError
from tacro_dev import demo, fixtures
from tacro_dev.dev_ehr import cli as dev_ehr_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tacro_dev", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fixtures.add_parser(sub)
    demo.add_parser(sub)
    dev_ehr_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"tacro_dev: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
