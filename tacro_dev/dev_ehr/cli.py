"""``python -m tacro_dev dev-ehr``: run the development EHR (see the package docstring)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from typing import Any

from tacro_dev.fixtures import LoadError, fixtures_dir, load_all, scenario_names


def run(args: argparse.Namespace) -> int:
    from service.fhir.policy import is_loopback_host
    from tacro_dev.dev_ehr.app import DevEhrSettings, create_dev_ehr

    if not is_loopback_host(args.host) and not args.allow_remote:
        print(
            f"dev-ehr refuses to listen on {args.host}: it is a development tool with no real sign-in. "
            "Use --allow-remote only on a network you control.",
            file=sys.stderr,
        )
        return 2
    try:
        root = fixtures_dir(args.dir)
        names = scenario_names(root)
    except LoadError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    fhir = args.fhir_server.rstrip("/")
    token = args.token or os.environ.get("TACRO_CDS_FHIR_TOKEN")
    shift_to = None if args.no_shift else date.today()
    if not args.no_load:
        print(
            f"loading {len(names)} fixture scenario(s) into {fhir}"
            + (f", dates shifted to read as of {shift_to}" if shift_to else ""),
            file=sys.stderr,
        )
        if load_all(fhir, token, root, names, out=sys.stderr, shift_to=shift_to):
            print("some scenarios did not load; see above", file=sys.stderr)
            return 1
    public = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    settings = DevEhrSettings(
        fhir_url=fhir,
        fhir_token=token,
        cds_url=args.cds_url.rstrip("/"),
        public_url=public,
        fixtures_dir=root,
        shift_to=shift_to,
    )
    app = create_dev_ehr(settings)
    print("*" * 72, file=sys.stderr)
    print(
        f"tacro-cds DEVELOPMENT EHR on {public}/  (synthetic patients only; no real sign-in)\n"
        f"CDS service: {settings.cds_url}   SMART issuer (iss): {public}/fhir\n"
        "Run the service with `tacro-cds serve --dev` (authentication off), or trust this EHR's key:\n"
        f'  TACRO_CDS_TRUSTED_ISSUERS=\'{{"{public}": {{"jwks_url": "{public}/.well-known/jwks.json"}}}}\'',
        file=sys.stderr,
    )
    print("*" * 72, file=sys.stderr)
    app.run(host=args.host, port=args.port, threaded=True, debug=False, use_reloader=False)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dev-ehr",
        help="DEVELOPMENT ONLY: a small EHR that calls the service and launches its app",
        description="A development-only EHR: lists the fixture patients, fires patient-view and "
        "order-select at the CDS service, shows the cards and launches the SMART app "
        "from a card (its own SMART authorization server in front of the FHIR server).",
    )
    p.add_argument(
        "--fhir-server",
        required=True,
        metavar="URL",
        help="FHIR server with (or to load) the fixtures, e.g. the one of .ci/fhir-server.sh",
    )
    p.add_argument("--token", help="bearer token for that FHIR server (default $TACRO_CDS_FHIR_TOKEN)")
    p.add_argument("--cds-url", default="http://127.0.0.1:8080", help="the CDS service (default %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; loopback only)")
    p.add_argument("--port", type=int, default=8090, help="port (default %(default)s)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument("--no-load", action="store_true", help="do not (re)load the fixtures into the FHIR server")
    p.add_argument("--no-shift", action="store_true", help="keep the fixtures' dates (default: shift by today − asOf)")
    p.add_argument("--dir", help="fixtures folder (default: the scenarios installed with the service)")
    p.set_defaults(func=run)
