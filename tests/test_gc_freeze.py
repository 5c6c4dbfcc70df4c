"""The start-up heap is frozen out of the cyclic garbage collector in each worker (untimed checks;
the pauses themselves are measured by ``python -m bench.gc_pauses``)."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

from bench.gc_pauses import CollectionTimer
from service.ops.worker import freeze_startup_heap

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "service" / "ops" / "gunicorn.conf.py"


def test_freezing_moves_the_live_objects_out_of_the_collectors_generations():
    survivor = [object() for _ in range(100)]
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(survivor)
        assert gc.is_tracked(survivor)
    finally:
        gc.unfreeze()


def test_the_gunicorn_settings_freeze_each_worker_after_fork(monkeypatch, tmp_path):
    # Set, so that reading the settings file names no metrics folder of its own in this process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    settings = runpy.run_path(str(SETTINGS_FILE))
    settings["post_fork"](None, None)
    assert frozen == [True]


def test_the_bench_timer_records_a_full_collection_by_generation():
    timer = CollectionTimer()
    gc.callbacks.append(timer)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(timer)
    assert len(timer.pauses[2]) == 1
    assert timer.pauses[2][0] >= 0
