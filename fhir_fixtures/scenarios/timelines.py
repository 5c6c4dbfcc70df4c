"""The two timelines most recipes start from, so each recipe states only what is particular to it.

A candidate: transfer 9 days ahead, tacrolimus drafted to start 2 days before it and run 16 days.
A patient on a course: tacrolimus active since ``started``, the transfer 2 days after the start.
"""

from __future__ import annotations

from typing import Any

from .chart import Dose, Scenario


def candidate(
    s: Scenario,
    *,
    ratio: float | None,
    th1: float = 24.0,
    transfer_in: int | None = 9,
    euploid: bool = False,
    transfer_kind: str = "ServiceRequest",
    baseline: bool = True,
) -> None:
    """RIF on the problem list, a Th1/Th2 panel 21 days ago, the transfer and a normal baseline."""
    s.rif()
    if ratio is not None:
        s.ratio(ratio, th1, round(th1 / ratio, 2), days=-21)
    if transfer_in is not None:
        s.transfer(transfer_in, euploid=euploid, kind=transfer_kind)
    if baseline:
        s.baseline()


def tacro_draft(s: Scenario, *, mg: float = 2, transfer_in: int = 9, drug: str = "tacrolimus", **kw: Any) -> str:
    """Tacrolimus drafted and selected: ``mg`` a day from 2 days before the transfer for 16 days."""
    dose = kw.pop("dose", None) or Dose(mg, start=transfer_in - 2, days=16)
    return s.medication(drug, dose, draft=True, select=True, **kw)


def on_tacrolimus(
    s: Scenario,
    *,
    mg: float = 2,
    started: int = -10,
    trough: float | None = 6.1,
    trough_days: int = -3,
    creatinine: float = 0.68,
) -> str:
    """RIF, eligible ratio, a transfer 2 days after the start, tacrolimus active since ``started``
    (within the 16-day course unless she is pregnant)."""
    s.rif()
    s.ratio(12.6, 25.2, 2.0, days=started - 25)
    s.transfer(started + 2)
    s.baseline(days=started - 10, creatinine=creatinine)
    rid = s.medication(
        "tacrolimus_1mg",
        Dose(mg, "{capsule}" if mg == int(mg) else "mg", start=started, text=f"{mg:g} mg once daily after dinner"),
        authored=started - 1,
        text="tacrolimus 1 mg capsule",
    )
    if trough is not None:
        # Drawn just before the evening dose: a true trough of once-daily dosing after dinner.
        s.obs("trough", trough, "ng/mL", days=trough_days, hour=19)
    return rid
