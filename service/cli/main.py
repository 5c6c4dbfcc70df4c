"""``tacro-cds`` command line: serve, db, knowledge, rxnorm, rulebook.

The development tools (demo, fixtures, dev-ehr) are not part of the installed service: they run
from a checkout as ``python -m tacro_dev``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources

from service.cli import knowledge as knowledge_cli
from service.cli import rulebook as rulebook_cli
from service.cli import rxnorm as rxnorm_import
from service.config import ConfigError, data_directory, load_settings
from service.errors import DatabaseSchemaError
from service.storage import migrate

Command = Callable[[argparse.Namespace], int]


def config_path() -> str:
    """The gunicorn settings file the package ships (loaded by path, see its note)."""
    return str(resources.files("service.ops") / "gunicorn.conf.py")


def gunicorn_command(args: argparse.Namespace) -> list[str]:
    """``gunicorn -c <the package's gunicorn.conf.py>`` with the options given on this command line
    (the others come from the settings file, the environment and GUNICORN_CMD_ARGS)."""
    command = [sys.executable, "-m", "gunicorn", "-c", config_path()]
    host = "127.0.0.1" if args.dev else args.host
    if host is not None or args.port is not None:
        command += ["--bind", f"{host or '0.0.0.0'}:{args.port if args.port is not None else _default_port()}"]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    return command


def _default_port() -> int:
    try:
        return int(os.environ.get("PORT", "8080"))
    except ValueError:
        raise ConfigError(f"PORT must be a whole number, not {os.environ['PORT']!r}") from None


def _serve(args: argparse.Namespace) -> int:
    if args.config_path:
        print(config_path())
        return 0
    if args.dev:
        os.environ["TACRO_CDS_AUTH_REQUIRED"] = "false"
        # Not "*": with authentication off, any website the developer visits could drive the
        # service (and read its answers). The public CDS Hooks sandbox is the browser client of
        # development; set TACRO_CDS_CORS_ORIGINS to add another.
        os.environ.setdefault("TACRO_CDS_CORS_ORIGINS", '["https://sandbox.cds-hooks.org"]')
        os.environ["TACRO_CDS_ALLOW_HTTP_FHIR"] = "loopback"  # plain-http FHIR only on this machine
        os.environ["TACRO_CDS_SMART_COOKIE_SECURE"] = "false"  # the SMART app's cookie over http://127.0.0.1
        os.environ.setdefault("TACRO_CDS_METRICS_OPEN", "true")  # /metrics without a token, on loopback
        print("*" * 72, file=sys.stderr)
        print(
            "tacro-cds DEV MODE: caller authentication is OFF, CORS allows the CDS Hooks sandbox, bound to 127.0.0.1,\n"
            "http fhirServer allowed on 127.0.0.1/localhost only, SMART app cookie not Secure,\n"
            "/metrics open. Never use --dev with real patient data.",
            file=sys.stderr,
        )
        print("*" * 72, file=sys.stderr)
    # Check the settings once before starting gunicorn: a bad one is one clear message.
    data_directory(load_settings())
    command = gunicorn_command(args)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process with gunicorn, so signals (SIGTERM: finish the calls in flight, then
    # stop) reach its master directly and it starts with nothing imported.
    os.execv(command[0], command)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tacro-cds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the service under gunicorn",
        description="Run the CDS Hooks service under gunicorn with the package's "
        "gunicorn.conf.py (as `gunicorn -c` would). The service's "
        "configuration comes from TACRO_CDS_* environment variables, "
        "gunicorn's from that file's variables and GUNICORN_CMD_ARGS "
        "(see README).",
    )
    serve.add_argument(
        "--dev", action="store_true", help="local development: 127.0.0.1 only, caller authentication OFF"
    )
    serve.add_argument("--host", help="address to bind (default 0.0.0.0; with --dev always 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default $PORT, else 8080)")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (default $WEB_CONCURRENCY, else 2)")
    serve.add_argument(
        "--threads",
        type=int,
        help="threads per worker running complete requests (default $GUNICORN_THREADS, "
        "else 8; half of them at most fetch from FHIR servers at once)",
    )
    serve.add_argument(
        "--config-path",
        action="store_true",
        help="print the path of the gunicorn settings file and exit (gunicorn -c PATH)",
    )
    serve.set_defaults(func=_serve)
    migrate.add_parser(sub)
    knowledge_cli.add_parser(sub)
    rxnorm_import.add_parser(sub)
    rulebook_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"tacro-cds: configuration error: {exc}", file=sys.stderr)
        return 2
    except DatabaseSchemaError as exc:
        print(f"tacro-cds: database: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
