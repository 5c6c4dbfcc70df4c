"""deploy/nginx.conf run by this machine's nginx (Debian's), without Docker.

The proxy's configuration is used as shipped, with two seams: the upstream file (Compose's names
the service through Docker's DNS, which does not exist here; this one lists the given 127.0.0.1
addresses, logs which one answered each request and keeps nginx's files in its own folder) and the
listening address (a free loopback port instead of 8080). Everything else (buffering, timeouts,
limits, headers, proxy settings) is the file the proxy container reads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SHIPPED_LISTEN = "listen 8080;"


def nginx_binary() -> str:
    """Debian's nginx; skipped when missing, a failure under CI=true (.ci/run installs it)."""
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("nginx is missing (.ci/run installs Debian's nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run does)")
    return binary


def proxy_prefix(
    folder: Path, upstreams: Sequence[str], port: int, *, extra_servers: dict[str, str] | None = None
) -> Path:
    """A copy of deploy/ in ``folder`` whose proxy listens on 127.0.0.1:``port`` and balances over
    ``upstreams`` ("127.0.0.1:PORT" each); returns the path of its nginx.conf."""
    conf = folder / "conf"
    shutil.copytree(DEPLOY, conf)
    main = conf / "nginx.conf"
    text = main.read_text(encoding="utf-8")
    assert text.count(SHIPPED_LISTEN) == 1, "deploy/nginx.conf should listen on 8080 exactly once"
    main.write_text(text.replace(SHIPPED_LISTEN, f"listen 127.0.0.1:{port};"), encoding="utf-8")
    servers = "\n".join(f"    server {address};" for address in upstreams)
    (conf / "upstream.conf").write_text(
        f"upstream tacro_cds {{\n{servers}\n    keepalive 16;\n    keepalive_timeout 4s;\n}}\n"
        f"log_format upstream '$status $upstream_addr $request_uri';\n"
        f"access_log {folder}/access.log upstream;\n"
        f"client_body_temp_path {folder}/client_body;\n"
        f"proxy_temp_path {folder}/proxy;\n"
        f"fastcgi_temp_path {folder}/fastcgi;\n"
        f"uwsgi_temp_path {folder}/uwsgi;\n"
        f"scgi_temp_path {folder}/scgi;\n",
        encoding="utf-8",
    )
    for name, body in (extra_servers or {}).items():
        (conf / "servers.d" / name).write_text(body, encoding="utf-8")
    return main


def nginx_command(binary: str, folder: Path, main: Path, *args: str) -> list[str]:
    """nginx with everything it writes (pid, error log) inside ``folder``. Started by root (CI),
    its workers run as root too: the test's folder is private to its user, and a worker that could
    not write its temporary files there would fail large requests."""
    user = " user root;" if os.geteuid() == 0 else ""
    return [
        binary,
        "-p",
        str(folder),
        "-c",
        str(main),
        "-e",
        str(folder / "error.log"),
        "-g",
        f"pid {folder}/nginx.pid; daemon off;{user}",
        *args,
    ]


def check_config(binary: str, folder: Path, main: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on the prepared configuration."""
    return subprocess.run(
        nginx_command(binary, folder, main, "-t"), capture_output=True, text=True, timeout=30, check=False
    )


@contextlib.contextmanager
def running_proxy(folder: Path, upstreams: Sequence[str], port: int) -> Iterator[str]:
    """deploy/nginx.conf serving on 127.0.0.1:``port`` in front of ``upstreams``; yields its base URL."""
    binary = nginx_binary()
    main = proxy_prefix(folder, upstreams, port)
    checked = check_config(binary, folder, main)
    assert checked.returncode == 0, checked.stderr
    with open(folder / "nginx.out", "wb") as out:
        process = subprocess.Popen(nginx_command(binary, folder, main), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {process.returncode}: "
                    f"{(folder / 'error.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                requests.get(base + "/healthz", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then the master exits
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def upstreams_used(folder: Path) -> list[str]:
    """The upstream address of each request the proxy logged, in order."""
    log = folder / "access.log"
    return [line.split()[1] for line in log.read_text().splitlines() if len(line.split()) >= 3] if log.exists() else []
