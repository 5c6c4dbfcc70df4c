"""``tacro-cds`` command line: serve, fixtures, demo, knowledge, rxnorm, dev-ehr."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from . import demo, fixtures_cli, knowledge_cli, rxnorm_import
from .config import ConfigError, data_directory, load_settings
from .dev_ehr import cli as dev_ehr_cli

Command = Callable[[argparse.Namespace], int]


def _serve(args: argparse.Namespace) -> int:
    if args.dev:
        os.environ["TACRO_CDS_AUTH_REQUIRED"] = "false"
        os.environ.setdefault("TACRO_CDS_CORS_ORIGINS", '["*"]')
        os.environ["TACRO_CDS_ALLOW_HTTP_FHIR"] = "loopback"  # plain-http FHIR only on this machine
        os.environ["TACRO_CDS_SMART_COOKIE_SECURE"] = "false"  # the SMART app's cookie over http://127.0.0.1
        print("*" * 72, file=sys.stderr)
        print("tacro-cds DEV MODE: caller authentication is OFF, CORS is open, bound to 127.0.0.1,\n"
              "http fhirServer allowed on 127.0.0.1/localhost only, SMART app cookie not Secure.\n"
              "Never use --dev with real patient data.", file=sys.stderr)
        print("*" * 72, file=sys.stderr)
        host = "127.0.0.1"
    else:
        host = args.host
    # Half the threads at most may wait on FHIR servers; the others keep serving prefetched calls
    # (with fewer than 4 threads there is nothing to split: all may).
    fallback = args.threads // 2 if args.threads >= 4 else args.threads
    os.environ.setdefault("TACRO_CDS_FHIR_FALLBACK_MAX_CONCURRENT", str(max(1, fallback)))
    # Read and check the settings once before forking workers: a bad one is one clear message, not
    # a traceback per worker; every worker then builds its app from this same object.
    settings = load_settings()
    data_directory(settings)
    from gunicorn.app.base import BaseApplication

    from . import create_app

    from .serving import asgi_app

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{args.port}")
            self.cfg.set("workers", args.workers)
            # The asyncio worker reads whole requests before a thread runs them: slow clients
            # hold no thread (service.serving).
            self.cfg.set("worker_class", "service.serving.Worker")
            self.cfg.set("asgi_lifespan", "off")
            self.cfg.set("timeout", 60)
            self.cfg.set("accesslog", None)
            # No control socket: it is not used, and two instances would unlink each other's.
            self.cfg.set("control_socket_disable", True)

        def load(self):  # type: ignore[no-untyped-def]
            app = create_app(settings)
            return asgi_app(app, threads=args.threads, max_request_bytes=app.config["MAX_CONTENT_LENGTH"])

    print(f"tacro-cds serving on http://{host}:{args.port}/cds-services", file=sys.stderr)
    _App().run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tacro-cds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service under gunicorn",
                           description="Run the CDS Hooks service under gunicorn. Configuration comes "
                                       "from TACRO_CDS_* environment variables (see README).")
    serve.add_argument("--dev", action="store_true",
                       help="local development: 127.0.0.1 only, caller authentication OFF")
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                       help="port (default 8080 or $PORT)")
    serve.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    serve.add_argument("--threads", type=int, default=8,
                       help="threads per worker running complete requests (default 8; half of them at "
                            "most fetch from FHIR servers at once)")
    serve.set_defaults(func=_serve)
    fixtures_cli.add_parser(sub)
    demo.add_parser(sub)
    knowledge_cli.add_parser(sub)
    rxnorm_import.add_parser(sub)
    dev_ehr_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"tacro-cds: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
