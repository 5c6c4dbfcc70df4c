"""Run the service under real gunicorn (``tacro-cds serve``) on a free 127.0.0.1 port, for the load
bench and the tests that need a real server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import requests

from service.cli.main import config_path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (gunicorn's workers), read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (after the parenthesised command, which may hold spaces) is the parent pid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def rss_kib(pid: int) -> int:
    """Resident set size of one process in KiB (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def socket_owner(local_port: int, remote_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the TCP socket from 127.0.0.1:``local_port`` to ``remote_port``
    (e.g. the gunicorn worker serving a client's connection), read from /proc; None if none does."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            inodes.add(f"socket:[{inode}]")
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue  # closed since listed
    return None


class Server:
    """A running gunicorn: its base URL, master pid and log file."""

    def __init__(self, base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.base_url = base_url
        self.process = process
        self.log_path = log_path

    @property
    def workers(self) -> list[int]:
        return child_pids(self.process.pid)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def worker_serving(self, client_port: int) -> int | None:
        """The worker holding the connection from ``client_port`` (while it is open), or None."""
        return socket_owner(self.port, client_port, self.workers)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


# Waiting for a server to come up: a generous bound (a cold start on a shared 2-core machine busy with
# other test runs has taken tens of seconds), looked at every POLL_S; one health probe may itself take
# up to PROBE_TIMEOUT_S while a worker is still importing.
START_TIMEOUT_S = 180.0
POLL_S = 0.1
PROBE_TIMEOUT_S = 10.0
# One request to a server that is up: bounds a hang, not a speed (tests that time answers say so).
REQUEST_TIMEOUT_S = 60.0


@contextlib.contextmanager
def gunicorn(
    *,
    workers: int = 2,
    threads: int = 2,
    env: Mapping[str, str] | None = None,
    start_timeout: float = START_TIMEOUT_S,
    app: str | None = None,
) -> Iterator[Server]:
    """Start ``tacro-cds serve`` (AUTH_REQUIRED off unless ``env`` says otherwise); stop it on exit.

    Its files (log, SQLite database, data folder) live in a temporary folder removed on exit, also
    when the body fails. With ``app`` ("module:variable", e.g. the bench's floor app), gunicorn serves
    that WSGI app instead, under the settings file ``tacro-cds serve`` gives gunicorn (its worker
    class included), so the two differ only in the app."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tacro-cds-gunicorn-", ignore_cleanup_errors=True) as folder:
        workdir = Path(folder)
        full_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TACRO_CDS_AUTH_REQUIRED": "false",
            "TACRO_CDS_FEEDBACK_DB": f"sqlite:///{workdir / 'feedback.sqlite'}",
            "TACRO_CDS_DATA_DIR": str(workdir / "data"),
            # Metrics files with the rest, removed with the folder even if gunicorn is killed.
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            **(env or {}),
        }
        log_path = workdir / "server.log"
        if app is None:
            command = [
                sys.executable,
                "-m",
                "service.cli.main",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
            ]
        else:
            # The service's own settings file (its asyncio worker, which reads whole requests on the
            # event loop and hands them to a thread pool; its timeouts; the heap frozen after fork):
            # only the app differs. The app named here wins over the file's wsgi_app.
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                config_path(),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                app,
            ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, cwd=workdir, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        try:
            _wait_until_up(server, workers, start_timeout)
            yield server
        finally:
            _stop(process)


def wait_for_health(
    url: str,
    *,
    timeout: float = START_TIMEOUT_S,
    alive: Callable[[], bool] = lambda: True,
    ready: Callable[[], bool] = lambda: True,
    probe_timeout: float = PROBE_TIMEOUT_S,
) -> bool:
    """Poll ``url`` every POLL_S until it answers 200 and ``ready()`` holds: True; False once ``timeout``
    has passed or ``alive()`` says the server is gone. Any failure of a probe (refused, reset, a read
    timeout while the server is still booting on a busy machine) only means "not yet"."""
    deadline = time.monotonic() + timeout
    while alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            if requests.get(url, timeout=min(probe_timeout, max(left, POLL_S))).status_code == 200 and ready():
                return True
        except requests.RequestException:
            pass
        time.sleep(POLL_S)
    return False


def _wait_until_up(server: Server, workers: int, timeout: float) -> None:
    def alive() -> bool:
        return server.process.poll() is None

    if not wait_for_health(
        server.base_url + "/healthz", timeout=timeout, alive=alive, ready=lambda: len(server.workers) >= workers
    ):
        if not alive():
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()[-3000:]}")
        raise RuntimeError(f"gunicorn did not come up within {timeout}s:\n{server.log()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # graceful: calls in flight finish (graceful_timeout)
        try:
            process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
