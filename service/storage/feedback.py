"""Feedback on issued cards: stored once per card, outcome and caller, only for a card this service
issued to that caller and still on record; the rest counted by reason. Per-caller rate and quota."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select

from service.errors import FeedbackQuotaError
from service.storage.engine import Database, key_text, outage_is_503, parse_timestamp
from service.storage.tables import feedback, issued_cards

log = logging.getLogger("tacro_cds.store")

# Why a feedback entry is not stored (the ``refused`` counts of the answer, and a metric label).
UNKNOWN_CARD = "unknown-card"
DUPLICATE = "duplicate"
TIMESTAMP_OUT_OF_RANGE = "timestamp-out-of-range"
UNKNOWN_OVERRIDE_REASON = "unknown-override-reason"
REFUSALS = frozenset({UNKNOWN_CARD, DUPLICATE, TIMESTAMP_OUT_OF_RANGE, UNKNOWN_OVERRIDE_REASON})

# An override reason code is a code: no markup, no spaces.
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# A client clock may run a little ahead; an outcome far in the future or long before the card was
# issued is not an outcome of that card.
FUTURE_SKEW = timedelta(hours=1)
PAST_SKEW = timedelta(days=1)


@dataclass(frozen=True)
class FeedbackQuota:
    """Per caller (JWT iss): entries per rolling minute, and entries kept in all."""

    per_minute: int = 600
    total: int = 100_000


@dataclass
class FeedbackResult:
    stored: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    stored_outcomes: dict[str, int] = field(default_factory=dict)  # entries stored, by outcome

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class FeedbackLog(Database):
    """Feedback entries and their per-caller quota."""

    quota: FeedbackQuota

    def add_feedback(
        self, service_id: str, entries: list[Mapping[str, Any]], *, issuer: str | None = None, tenant: str | None = None
    ) -> int:
        """``submit_feedback``, returning how many entries were stored."""
        return self.submit_feedback(service_id, entries, issuer=issuer, tenant=tenant).stored

    @outage_is_503
    def submit_feedback(
        self, service_id: str, entries: list[Mapping[str, Any]], *, issuer: str | None = None, tenant: str | None = None
    ) -> FeedbackResult:
        """Store validated CDS Hooks feedback entries in one transaction; committed on return.

        An entry is stored only for a card this service issued to this caller (issuer and tenant)
        and still on record, once per card and outcome, with an outcome time between the card's
        issue (less a day) and now (plus an hour), and an override reason code the card offered.
        The others are counted by reason in the result. FeedbackQuotaError (429) when the caller
        is over its rate or quota: then nothing is stored."""
        received = self.now()
        rows = [_feedback_row(service_id, entry, received) for entry in entries]
        result = FeedbackResult()
        if not rows:
            return result
        caller = key_text(issuer or "")
        uuids = sorted({row["card_uuid"] for row in rows})
        with self.engine.begin() as conn:
            self._check_quota(conn, caller, len(rows), received)
            found = conn.execute(
                select(
                    issued_cards.c.card_uuid,
                    issued_cards.c.kind,
                    issued_cards.c.issued_at,
                    issued_cards.c.tenant,
                    issued_cards.c.override_codes,
                ).where(
                    issued_cards.c.card_uuid.in_(uuids),
                    issued_cards.c.service_id == service_id,
                    issued_cards.c.issuer == caller,
                )
            )
            issued = {row.card_uuid: row for row in found if row.tenant == tenant}
            done = {
                (card, outcome)
                for card, outcome in conn.execute(
                    select(feedback.c.card_uuid, feedback.c.outcome).where(
                        feedback.c.service_id == service_id,
                        feedback.c.issuer == caller,
                        feedback.c.card_uuid.in_(uuids),
                    )
                )
            }
            keep = []
            for row in rows:
                card = issued.get(row["card_uuid"])
                reason = _refusal(row, card, received, done)
                if reason:
                    result.refuse(reason)
                    continue
                assert card is not None  # _refusal refuses a card not on record
                done.add((row["card_uuid"], row["outcome"]))
                row.update(card_kind=card.kind, issuer=caller, tenant=tenant)
                keep.append(row)
            if keep:
                conn.execute(insert(feedback), keep)
        result.stored = len(keep)
        for row in keep:
            result.stored_outcomes[row["outcome"]] = result.stored_outcomes.get(row["outcome"], 0) + 1
        if result.refused:
            log.info(
                "feedback refused",
                extra={
                    "service": service_id,
                    "cards": sum(result.refused.values()),
                    "reason": ",".join(sorted(result.refused)),
                },
            )
        return result

    def _check_quota(self, conn: Any, caller: str, count: int, now: datetime) -> None:
        recent = conn.execute(
            select(func.count())
            .select_from(feedback)
            .where(feedback.c.issuer == caller, feedback.c.received_at > now - timedelta(minutes=1))
        ).scalar_one()
        if recent + count > self.quota.per_minute:
            raise FeedbackQuotaError(
                f"more than {self.quota.per_minute} feedback entries in a minute; "
                "nothing was stored, send it again later"
            )
        total = conn.execute(select(func.count()).select_from(feedback).where(feedback.c.issuer == caller)).scalar_one()
        if total + count > self.quota.total:
            raise FeedbackQuotaError(
                f"this caller's feedback quota ({self.quota.total} entries) is used up; nothing was stored"
            )

    @outage_is_503
    def feedback_summary(
        self, service_id: str, *, issuer: str | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        """Counts per card kind and outcome, and per override reason (system and code: two code
        systems may share a code), for one service and one caller: issuer and tenant (the feedback
        it sent on the cards issued to it; two tenants of one issuer never see each other's)."""
        kind = func.coalesce(feedback.c.card_kind, issued_cards.c.kind, "unknown")
        same_tenant = feedback.c.tenant.is_(None) if tenant is None else feedback.c.tenant == tenant
        mine = and_(feedback.c.issuer == key_text(issuer or ""), same_tenant)
        with self.engine.begin() as conn:
            by_kind = conn.execute(
                select(kind, feedback.c.outcome, func.count())
                .select_from(feedback.outerjoin(issued_cards, issued_cards.c.card_uuid == feedback.c.card_uuid))
                .where(feedback.c.service_id == service_id, mine)
                .group_by(kind, feedback.c.outcome)
            ).all()
            reasons = conn.execute(
                select(feedback.c.override_system, feedback.c.override_code, func.count())
                .where(feedback.c.service_id == service_id, mine, feedback.c.override_code.is_not(None))
                .group_by(feedback.c.override_system, feedback.c.override_code)
            ).all()
            comments = conn.execute(
                select(func.count()).where(
                    feedback.c.service_id == service_id, mine, feedback.c.user_comment.is_not(None)
                )
            ).scalar_one()
        summary: dict[str, Any] = {
            "service": service_id,
            "total": sum(n for _, _, n in by_kind),
            "byKind": {},
            "overrideReasons": [],
            "overrideComments": comments,
        }
        for card_kind, outcome, count in sorted(by_kind):
            summary["byKind"].setdefault(card_kind, {})[outcome] = count
        for system, code, count in sorted(reasons, key=lambda r: (r[0] or "", r[1])):
            # A reason sent without a system (the public sandbox does) is counted apart, system-less.
            summary["overrideReasons"].append({**({"system": system} if system else {}), "code": code, "count": count})
        return summary


def _refusal(row: Mapping[str, Any], card: Any, now: datetime, done: set[tuple[str, str]]) -> str | None:
    """Why a feedback entry is not stored, or None."""
    if card is None:
        return UNKNOWN_CARD
    if (row["card_uuid"], row["outcome"]) in done:
        return DUPLICATE
    moment = row["outcome_timestamp"]
    if moment > now + FUTURE_SKEW or moment < card.issued_at - PAST_SKEW:
        return TIMESTAMP_OUT_OF_RANGE
    code = row["override_code"]
    if code is not None and (not _CODE.match(code) or (card.override_codes and code not in card.override_codes)):
        return UNKNOWN_OVERRIDE_REASON
    return None


def _feedback_row(service_id: str, entry: Mapping[str, Any], received: datetime) -> dict[str, Any]:
    override = entry.get("overrideReason") or {}
    reason = override.get("reason") or {}
    accepted = [str(s["id"]) for s in entry.get("acceptedSuggestions") or []]

    def opt(value: Any) -> str | None:
        return str(value) if value not in (None, "") else None

    return {
        "service_id": service_id,
        "card_uuid": str(entry["card"]),
        "outcome": str(entry["outcome"]),
        "accepted_suggestions": accepted or None,
        "override_system": opt(reason.get("system")),
        "override_code": opt(reason.get("code")),
        "override_display": opt(reason.get("display")),
        "user_comment": opt(override.get("userComment")),
        "outcome_timestamp": parse_timestamp(str(entry["outcomeTimestamp"])),
        "received_at": received,
    }
