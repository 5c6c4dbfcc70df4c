"""The side-by-side bench's profile mode (``python -m bench.side_by_side --mode profile``): the service
in-process under pyinstrument, its call tree as text and HTML, and the project functions with the
largest inclusive share."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bodies import build_body
from bench.server import ROOT


def _project_function(frame: Any) -> str | None:
    path = Path(frame.file_path or "")
    for package in ("service", "cards"):
        with contextlib.suppress(ValueError):
            relative = path.resolve().relative_to(ROOT / package)
            return f"{package}/{relative}:{frame.function}"
    return None


def _inclusive_times(root: Any) -> dict[str, float]:
    """Inclusive seconds per project function (a recursive call counted once)."""
    totals: dict[str, float] = {}

    def walk(frame: Any, on_path: frozenset[str]) -> None:
        name = _project_function(frame)
        if name is not None and name not in on_path:
            totals[name] = totals.get(name, 0.0) + frame.time
            on_path = on_path | {name}
        for child in frame.children:
            walk(child, on_path)

    walk(root, frozenset())
    return totals


def profile(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """pyinstrument over in-process calls; the call tree under ``out``."""
    from pyinstrument import Profiler

    from service import create_app

    body = build_body(args.profile_body)
    with tempfile.TemporaryDirectory(prefix="tacro-cds-profile-") as tmp:
        app = create_app(
            {
                "AUTH_REQUIRED": False,
                "FEEDBACK_DB": f"sqlite:///{Path(tmp) / 'feedback.sqlite'}",
                "LOG_LEVEL": "WARNING",
            }
        )
        client = app.test_client()

        def call() -> None:
            response = client.post(body.path, data=body.payload, content_type="application/json")
            if response.status_code != 200:
                raise RuntimeError(f"profile: {response.status_code} {response.get_data(as_text=True)[:500]}")

        for _ in range(3):
            call()
        profiler = Profiler(interval=0.0005)
        t0 = time.perf_counter()
        profiler.start()
        for _ in range(args.profile_calls):
            call()
        profiler.stop()
        elapsed = time.perf_counter() - t0
    session = profiler.last_session
    assert session is not None
    text_path = out / f"profile-{body.name}.txt"
    html_path = out / f"profile-{body.name}.html"
    text_path.write_text(profiler.output_text(unicode=True, color=False), encoding="utf-8")
    html_path.write_text(profiler.output_html(), encoding="utf-8")
    root = session.root_frame()
    total = root.time if root is not None else 0.0
    top = sorted(_inclusive_times(root).items(), key=lambda kv: -kv[1]) if root is not None else []
    cpu = getattr(session, "cpu_time", None)
    print(
        f"\nprofile: {body.describe()}; {args.profile_calls} calls in-process, "
        f"{elapsed / args.profile_calls * 1000:.1f} ms per call under the profiler"
        + (f" ({cpu / args.profile_calls * 1000:.1f} ms CPU; shares are of wall time)" if cpu else "")
    )
    print(
        f"  call tree: {text_path.relative_to(ROOT) if text_path.is_relative_to(ROOT) else text_path}, "
        f"{html_path.name} beside it"
    )
    print("  project functions by inclusive share of the profiled time:")
    for name, seconds in top[: args.profile_top]:
        print(f"    {100 * seconds / total:5.1f} %  {seconds / args.profile_calls * 1000:7.2f} ms/call  {name}")
    return {
        "body": body.describe(),
        "calls": args.profile_calls,
        "ms_per_call": elapsed / args.profile_calls * 1000,
        "call_tree": str(text_path),
        "html": str(html_path),
        "top": [
            {"function": n, "share": s / total, "ms_per_call": s / args.profile_calls * 1000}
            for n, s in top[: args.profile_top]
        ],
    }
