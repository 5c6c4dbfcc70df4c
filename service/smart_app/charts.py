"""Server-side SVG charts, drawn by matplotlib (object API, no pyplot state: safe in threads).

Each chart comes with its values as a table in the page (the text alternative); the SVG itself
carries ``role="img"`` and a label. The SVG's own ``<style>`` block is allowed by hash in the page's
Content-Security-Policy (``style_hashes``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INK = "#1f2933"
BAND = "#d3eadb"
ACCENT = "#1d4ed8"
ALERT = "#b42318"
MUTED = "#52606d"


@dataclass(frozen=True)
class Marker:
    when: date
    label: str


@dataclass(frozen=True)
class Point:
    when: datetime
    value: float
    usable: bool  # final and usable: drawn filled; otherwise drawn hollow


def _figure(height: float = 2.8) -> Figure:
    # Imported on first use: matplotlib takes a while to load, and a service whose app is never
    # opened should not pay for it at start-up. The Figure API needs no pyplot and no display.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.2, height), dpi=96, layout="constrained")
    fig.patch.set_facecolor("white")
    return fig


def _dates(ax: Any) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _svg(fig: Figure, label: str, chart_id: str) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    text = text[text.index("<svg") :]
    text = _STYLE_ATTRIBUTE.sub(_presentation_attributes, text)
    # Accessible name; the element ids are made unique per chart so two charts never share clip paths.
    text = text.replace(
        "<svg ",
        f'<svg role="img" aria-label="{_escape(label)}" focusable="false" class="chart-svg" data-chart="{chart_id}" ',
        1,
    )
    return text


_STYLE_ATTRIBUTE = re.compile(r' style="([^"]*)"')
_PROPERTY = re.compile(r"^[a-z-]+$")


def _presentation_attributes(match: re.Match[str]) -> str:
    """``style="fill: #fff; stroke-width: 0.8"`` as ``fill="#fff" stroke-width="0.8"``: SVG presentation
    attributes draw the same and are not inline styles, so the page's CSP needs no 'unsafe-inline'."""
    out = []
    for declaration in match.group(1).split(";"):
        name, _, value = declaration.partition(":")
        name, value = name.strip(), value.strip()
        if name and value and _PROPERTY.match(name):
            out.append(f' {name}="{value}"')
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def style_hashes(svgs: Sequence[str]) -> list[str]:
    """CSP source expressions for the ``<style>`` blocks of these SVGs."""
    hashes: list[str] = []
    for svg in svgs:
        for body in re.findall(r"<style[^>]*>(.*?)</style>", svg, flags=re.S):
            digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
            if f"'sha256-{digest}'" not in hashes:
                hashes.append(f"'sha256-{digest}'")
    return hashes


def _markers(ax: Any, markers: Sequence[Marker]) -> None:
    for i, m in enumerate(sorted(markers, key=lambda m: m.when)):
        # Labels step down one line per marker so neighbouring ones do not overprint each other.
        ax.axvline(datetime.combine(m.when, datetime.min.time()), color=MUTED, linestyle=":", linewidth=1.2)
        ax.annotate(
            m.label,
            xy=(datetime.combine(m.when, datetime.min.time()), 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12 - 11 * (i % 3)),
            textcoords="offset points",
            fontsize=8,
            color=MUTED,
            rotation=0,
        )


def _span(ax: Any, points: Sequence[Point], markers: Sequence[Marker], extra: Sequence[datetime] = ()) -> None:
    """The time axis from the first to the last thing drawn, a week of margin each side (matplotlib
    would widen a single point to years)."""
    moments = [p.when.replace(tzinfo=None) for p in points] + [
        datetime.combine(m.when, datetime.min.time()) for m in markers
    ]
    moments += [d.replace(tzinfo=None) for d in extra]
    if moments:
        margin = timedelta(days=7)
        ax.set_xlim(min(moments) - margin, max(moments) + margin)


def ratio_chart(
    points: Sequence[Point], cutoffs: Sequence[tuple[float, str]], markers: Sequence[Marker], label: str
) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    _plot_points(ax, points, ACCENT)
    for value, name in cutoffs:
        ax.axhline(value, color=ALERT, linestyle="--", linewidth=1.2)
        ax.annotate(
            name,
            xy=(0.0, value),
            xycoords=("axes fraction", "data"),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=8,
            color=ALERT,
        )
    _markers(ax, markers)
    _span(ax, points, markers)
    ax.set_ylabel("Th1/Th2 ratio")
    ax.set_ylim(bottom=0, top=max([p.value for p in points] + [v for v, _ in cutoffs] + [1]) * 1.25)
    _dates(ax)
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig, label, "ratio")


def trough_chart(
    points: Sequence[Point],
    band: tuple[float, float] | None,
    doses: Sequence[tuple[datetime, float]],
    markers: Sequence[Marker],
    label: str,
) -> str:
    fig = _figure(3.4)
    ax = fig.add_subplot()
    if band:
        ax.axhspan(band[0], band[1], color=BAND, label=f"target {band[0]:g}–{band[1]:g} ng/mL")
    _plot_points(ax, points, ACCENT, label="trough (ng/mL)")
    ax.set_ylabel("tacrolimus trough (ng/mL)")
    top = max([p.value for p in points] + [band[1] if band else 0, 1]) * 1.2
    ax.set_ylim(bottom=0, top=top)
    handles, labels = ax.get_legend_handles_labels()
    if doses:
        ax2: Any = ax.twinx()
        xs = [d for d, _ in doses]
        ys = [v for _, v in doses]
        ax2.step(xs, ys, where="post", color=MUTED, linewidth=1.6, label="daily dose (mg)")
        ax2.set_ylabel("dose (mg/day)", color=MUTED)
        ax2.set_ylim(bottom=0, top=max(ys + [1]) * 1.6)
        more_handles, more_labels = ax2.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    _markers(ax, markers)
    _span(ax, points, markers, [d for d, _ in doses])
    _dates(ax)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return _svg(fig, label, "trough")


def _plot_points(ax: Any, points: Sequence[Point], colour: str, label: str | None = None) -> None:
    usable = [p for p in points if p.usable]
    other = [p for p in points if not p.usable]
    if usable:
        ax.plot(
            [p.when for p in usable], [p.value for p in usable], marker="o", color=colour, linewidth=1.5, label=label
        )
    if other:
        ax.plot(
            [p.when for p in other],
            [p.value for p in other],
            marker="o",
            linestyle="none",
            markerfacecolor="white",
            color=colour,
            label="not usable (shown only)",
        )
