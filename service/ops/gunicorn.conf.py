"""gunicorn settings of tacro-cds.

Run the service the conventional way:

    gunicorn -c gunicorn.conf.py                    # in a checkout, or the image's /app
    gunicorn -c "$(tacro-cds serve --config-path)"  # wherever the package is installed

``tacro-cds serve`` runs exactly this (it execs gunicorn with this file). Every setting below comes
from an environment variable with a default; gunicorn's own ``GUNICORN_CMD_ARGS`` and command-line
options are applied after this file and win (``GUNICORN_CMD_ARGS="--keep-alive 10"``).

| variable                    | setting            | default                    |
|-----------------------------|--------------------|----------------------------|
| GUNICORN_BIND               | bind               | 0.0.0.0:$PORT (PORT: 8080) |
| WEB_CONCURRENCY             | workers            | 2                          |
| GUNICORN_THREADS            | threads            | 8 (per worker)             |
| GUNICORN_TIMEOUT            | timeout            | 60 s                       |
| GUNICORN_GRACEFUL_TIMEOUT   | graceful_timeout   | 30 s                       |
| GUNICORN_KEEPALIVE          | keepalive          | 5 s                        |
| FORWARDED_ALLOW_IPS         | forwarded_allow_ips| 127.0.0.1,::1              |
| PROMETHEUS_MULTIPROC_DIR    | metrics folder     | a new temporary folder, removed at exit |

This file is loaded by path, never imported as part of the ``service`` package: the metrics folder
must be in the environment before prometheus-client is first imported (it picks its multiprocess
mode at import), and importing ``service`` imports it.
"""

import os
import secrets
import shutil
import sys
import tempfile
from typing import Any


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"tacro-cds: configuration error: {name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise SystemExit(f"tacro-cds: configuration error: {name} must be at least 1, not {value}")
    return value


bind = [os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_env_int('PORT', 8080)}"]
workers = _env_int("WEB_CONCURRENCY", 2)
# Threads of each worker running complete requests (service.ops.worker.Worker: the asyncio worker reads
# requests on its event loop, so slow clients hold no thread). Half of them at most fetch from FHIR
# servers at once (FHIR_FALLBACK_MAX_CONCURRENT, set in on_starting unless configured).
threads = _env_int("GUNICORN_THREADS", 8)
worker_class = "service.ops.worker.Worker"
# A worker silent this long is killed and replaced; above FHIR_TOTAL_BUDGET_S (10 s by default).
timeout = _env_int("GUNICORN_TIMEOUT", 60)
# On SIGTERM workers stop accepting and finish the calls in flight for up to this long; above a
# hook call's longest FHIR fallback (FHIR_TOTAL_BUDGET_S).
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Idle keep-alive connections (a proxy's upstream pool) are kept this long.
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# Peers whose X-Forwarded-Proto / X-Forwarded-* gunicorn trusts (the reverse proxy's address).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"
wsgi_app = "service:create_app()"
asgi_lifespan = "off"
accesslog = None  # the service logs one JSON line per call itself
# No control socket: it is not used, and two instances would unlink each other's.
control_socket_disable = True

# prometheus-client's multiprocess mode: each worker writes its values to files in this folder and a
# scrape sums them. The variable is set here, when gunicorn reads this file, because gunicorn imports
# the worker class (and with it the service and prometheus_client) before any hook runs. The folder
# itself is made in on_starting (nothing is left behind by `gunicorn --print-config`).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(
        tempfile.gettempdir(), f"tacro-cds-metrics-{os.getpid()}-{secrets.token_hex(8)}"
    )
    # This master made the name (and keeps it across a configuration reload, SIGHUP): it removes
    # the folder at exit.
    os.environ["TACRO_METRICS_DIR_OWNER"] = str(os.getpid())


def _owns_metrics_dir() -> bool:
    return os.environ.get("TACRO_METRICS_DIR_OWNER") == str(os.getpid())


def on_starting(server: Any) -> None:
    """In the master, before any worker: the fallback concurrency from the final thread count, the
    service's settings and knowledge (with the site file) checked once (a bad one is one message, not
    a traceback per worker), the database migrated once, then an empty metrics folder (counters start at zero with each start;
    made last, so a start refused above leaves nothing behind)."""
    threads_now = int(server.cfg.threads)
    fallback = threads_now // 2 if threads_now >= 4 else threads_now
    os.environ.setdefault("TACRO_CDS_FHIR_FALLBACK_MAX_CONCURRENT", str(max(1, fallback)))
    from cards.knowledge import KnowledgeError, load_knowledge_report
    from service.config import ConfigError, data_directory, database_url, load_settings
    from service.errors import DatabaseSchemaError
    from service.storage.engine import build_engine
    from service.storage.migrate import bring_up_to_date

    try:
        settings = load_settings()
        data_directory(settings)
        # The knowledge and the site file (SITE_CONFIG) read once: a wrong path or a bad entry is one
        # line here, not a traceback from every worker.
        load_knowledge_report(settings.site_config, settings.rxnorm_products)
        # The database brought up to date (or checked, without DB_AUTO_UPGRADE) once, here: the
        # workers then find it at the current revision.
        engine = build_engine(database_url(settings))
        try:
            bring_up_to_date(engine, upgrade=settings.db_auto_upgrade)
        finally:
            engine.dispose()
        # Live mode on unsigned knowledge, when the site asked for a refusal: one message, here.
        from service.review.rulebook_state import refusal_at_start

        why = refusal_at_start(settings)
        if why:
            raise ConfigError(why)
    except ConfigError as exc:
        print(f"tacro-cds: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KnowledgeError as exc:
        print(f"tacro-cds: knowledge: {exc}", file=sys.stderr)
        sys.exit(2)
    except DatabaseSchemaError as exc:
        print(f"tacro-cds: database: {exc}", file=sys.stderr)
        sys.exit(2)
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if _owns_metrics_dir():
        os.mkdir(folder, 0o700)  # a fresh random name: fails rather than use a folder someone made
    else:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))
    print(f"tacro-cds serving on http://{server.cfg.bind[0]}/cds-services", file=sys.stderr)


def post_fork(server: Any, worker: Any) -> None:
    """In each worker, just forked: what it inherited from the master (the imported modules and
    gunicorn's own state, or the whole app under ``preload_app``) is frozen out of the cyclic garbage
    collector, so no full collection in the worker walks it; the worker freezes its app again once
    built (``service.ops.worker.Worker.load_wsgi``)."""
    import gc

    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live values leave the scrape (its counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _owns_metrics_dir():
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
