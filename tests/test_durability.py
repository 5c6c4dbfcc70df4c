"""Concurrent feedback posts while the server is killed with SIGKILL and restarted lose no
entry that was answered 200.

gunicorn (2 workers) serves the app on 127.0.0.1 with FEEDBACK_DB an SQLite file. Threads post
feedback; when a third of the posts have been answered, the whole gunicorn process group (master and
workers) is SIGKILLed mid-flight and started again; the posting continues. Afterwards every entry that
was answered 200 must be in the database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select

from bench.server import wait_for_health
from service.storage.store import Store, feedback

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "tacrolimus-order-sign"
POSTS = 300
THREADS = 8
KILL_AFTER = POSTS // 3
# Bounds the posting (so a broken server cannot hang the run), not a speed requirement: generous for a
# 2-core machine shared with other test runs, where the restart alone has taken tens of seconds.
TIME_LIMIT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """gunicorn in its own process group, so one killpg reaches master and workers."""

    def __init__(self, db_file: Path, log_file: Path) -> None:
        self.db_file = db_file
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        port = _free_port()
        env = {
            **os.environ,
            "TACRO_CDS_AUTH_REQUIRED": "false",
            "TACRO_CDS_FEEDBACK_DB": f"sqlite:///{self.db_file}",
            "TACRO_CDS_LOG_LEVEL": "WARNING",
            "TACRO_CDS_DATA_DIR": str(self.db_file.parent / "data"),
            # gunicorn reads ./gunicorn.conf.py; a SIGKILLed master cannot remove a metrics folder
            # it made, so the test gives one that goes with its own temporary folder.
            "PROMETHEUS_MULTIPROC_DIR": str(self.db_file.parent / "metrics"),
            "PYTHONPATH": str(ROOT),
        }
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--graceful-timeout",
                    "2",
                    "service:create_app()",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        process = self.process
        if wait_for_health(f"{base}/healthz", alive=lambda: process.poll() is None):
            self.base = base
            return
        self.stop()
        raise AssertionError(f"gunicorn did not start: {self.log_file.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.mark.slow
def test_no_acknowledged_feedback_is_lost_when_gunicorn_is_killed(tmp_path):
    db_file = tmp_path / "feedback.sqlite"
    # Feedback is taken only on cards the service issued (to this caller: none, authentication off).
    issuing = Store(f"sqlite:///{db_file}")
    issuing.record_cards(SERVICE, [{"uuid": f"card-{i:04d}"} for i in range(POSTS)], ["dose"] * POSTS)
    issuing.dispose()
    server = Server(db_file, tmp_path / "gunicorn.log")
    server.start()
    started = time.monotonic()

    acknowledged: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(POSTS))
    enough_answered = threading.Event()
    serving = threading.Event()
    serving.set()

    def poster() -> None:
        session = requests.Session()
        while time.monotonic() - started < TIME_LIMIT_S:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            card = f"card-{i:04d}"
            body = {
                "feedback": [
                    {
                        "card": card,
                        "outcome": "overridden",
                        "overrideReason": {"userComment": f"post {i}"},
                        "outcomeTimestamp": datetime.now(UTC).isoformat(),
                    }
                ]
            }
            try:
                response = session.post(f"{server.base}/cds-services/{SERVICE}/feedback", json=body, timeout=30)
                ok = response.status_code == 200 and response.json() == {"stored": 1}
            except requests.RequestException:
                ok = False
                serving.wait(timeout=TIME_LIMIT_S)  # down: wait for the restart, then go on
            with lock:
                (acknowledged if ok else failed).append(card)
                if len(acknowledged) >= KILL_AFTER:
                    enough_answered.set()

    threads = [threading.Thread(target=poster) for _ in range(THREADS)]
    try:
        for t in threads:
            t.start()
        assert enough_answered.wait(timeout=TIME_LIMIT_S)
        serving.clear()
        server.kill()  # mid-flight: the other threads are still posting
        with lock:
            answered_before_kill = len(acknowledged)
        server.start()
        serving.set()
        for t in threads:
            t.join(timeout=TIME_LIMIT_S)
    finally:
        server.stop()
    elapsed = time.monotonic() - started

    engine = create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        stored = set(conn.execute(select(feedback.c.card_uuid)).scalars())
    engine.dispose()

    lost = sorted(set(acknowledged) - stored)
    print(
        f"\nkill test: {len(acknowledged) + len(failed)} posts in {elapsed:.1f} s, "
        f"{len(acknowledged)} answered 200 ({answered_before_kill} before the SIGKILL), "
        f"{len(failed)} failed, {len(stored)} rows found after the kill, "
        f"{len(set(acknowledged) & stored)} of the 200s among them, lost: {len(lost)}"
    )
    assert not any(t.is_alive() for t in threads)
    assert lost == []
    assert len(acknowledged) + len(failed) == POSTS
    assert len(acknowledged) > answered_before_kill, "nothing was answered after the restart"
