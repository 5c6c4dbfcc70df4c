"""The JWT replay cache: each (iss, jti) accepted once until it expires, across every worker and
replica (a uniqueness constraint of the database decides, never process memory)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from service.storage.engine import Database, key_text, outage_is_503, utc_naive
from service.storage.tables import seen_jti

# Purge expired jti rows on the first call and then every PURGE_EVERY calls of remember_jti (and of
# the issued-card record, which purges every table).
PURGE_EVERY = 200


class ReplayCache(Database):
    """Seen JWT ids."""

    @outage_is_503
    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True if (iss, jti) is new, False if already seen and not yet expired."""
        now = self.now()
        if next(self._calls) % PURGE_EVERY == 0:
            self.purge_expired()
        key = {"iss": key_text(iss), "jti": key_text(jti)}
        expires = utc_naive(expires_at)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(seen_jti).values(**key, expires_at=expires))
            return True
        except IntegrityError:
            pass
        # Seen before: only an expired, not yet purged row may be reused. The conditional update is
        # atomic, so of two processes racing for it exactly one wins.
        with self.engine.begin() as conn:
            reused = conn.execute(
                update(seen_jti)
                .where(seen_jti.c.iss == key["iss"], seen_jti.c.jti == key["jti"], seen_jti.c.expires_at < now)
                .values(expires_at=expires)
            )
        return reused.rowcount == 1

    @outage_is_503
    def purge_expired(self) -> int:
        """Delete expired jti rows; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(seen_jti).where(seen_jti.c.expires_at < self.now()))
        return int(result.rowcount)
