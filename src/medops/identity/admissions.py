"""Who a credential proves, remembered while nothing that could change the answer happened.

Checking a bearer token costs several reads (the token and user rows, their state against the
audit trail, the roles): more than scoring a row or starting a run. Every change that could
revoke an admission (a token revoked or expired by an admin, a session ended, a user disabled, a
role removed, a password reset) is an audited change, and every audited change appends to the
trail. So an admission is remembered with the newest id of the trail's events that could change
it (``epoch``: the whole trail for the prediction API, whose check also reads roles; the users'
and tokens' events for a script's runs) and reused only while that id is unchanged, which one
indexed read confirms. Only admissions are remembered, never refusals, and a remembered one ends
at its token's expiry. The key is the secret's SHA-256, never the secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medops.caller import Caller
from medops.clock import utc_now
from medops.errors import DatabaseUnreachable
from medops.store.database import Database
from medops.store.schema import AuditEvent

MAX_REMEMBERED = 10_000
# plain SQL: no statement to build per check
NEWEST_EVENT = f"SELECT max(seq) FROM {AuditEvent.__tablename__}"
# users, roles, tokens and sessions: one read of the (entity_type, seq) index per kind
NEWEST_IDENTITY_EVENT = (
    f"SELECT max(newest) FROM (SELECT max(seq) AS newest FROM {AuditEvent.__tablename__} WHERE entity_type = 'user' "
    f"UNION ALL SELECT max(seq) FROM {AuditEvent.__tablename__} WHERE entity_type = 'token') AS kinds"
)


@dataclass(frozen=True)
class Admitted:
    caller: Caller
    expires_at: datetime | None
    epoch: int  # the trail's newest event id just before the admission was checked in full


class Admissions:
    """A bounded, thread-safe memory of admitted secrets (see the module docstring)."""

    def __init__(
        self, db: Database, check: Callable[[str], tuple[Caller, datetime | None]], *, epoch: str = NEWEST_EVENT
    ) -> None:
        self.db = db
        self.check = check  # the full check: authenticate and authorize, raising on a refusal
        self._epoch_sql = epoch  # one query of one row and column: the newest id that could change a check
        self._seen: OrderedDict[bytes, Admitted] = OrderedDict()
        self._lock = threading.Lock()
        self._held = threading.Lock()  # the one connection the reads of the newest id share
        self._connection: Any = None
        self._cursor: Any = None  # on the driver's connection under _connection
        self.full_checks = 0

    def epoch(self) -> int:
        """The newest id of the trail's events that could change a check: one index read on a connection
        held for it (DatabaseUnreachable when the database does not answer, after one try on a fresh one)."""
        with self._held:
            for attempt in (1, 2):
                try:
                    return self._newest()
                except Exception as exc:  # a connection the server dropped (a restart, a failover): once more
                    self._drop()
                    if attempt == 2:
                        raise DatabaseUnreachable("the metadata database did not answer the token check") from exc
        raise AssertionError("unreachable")

    def _newest(self) -> int:
        if self._cursor is None:
            connection = self.db.engine.raw_connection()
            driver: Any = connection.dbapi_connection
            connection.detach()  # out of the pool for the server's life: it never goes back in autocommit
            if self.db.dialect == "sqlite":
                driver.isolation_level = None
            else:
                driver.rollback()  # whatever the pool's connect hooks began: autocommit is set outside a transaction
                driver.autocommit = True
            # in autocommit each read sees the newest commit and leaves no transaction open between requests,
            # with no rollback to send after it (a round trip on PostgreSQL); the cursor is kept (1.9 against
            # 3.6 us a read on SQLite, measured)
            self._connection, self._cursor = connection, driver.cursor()
        self._cursor.execute(self._epoch_sql)
        rows = self._cursor.fetchall()  # read to the end: SQLite ends the statement's read there
        return int(rows[0][0] or 0) if rows else 0

    def _drop(self) -> None:
        self._cursor = None
        if self._connection is not None:
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalidating one the database already closed: nothing to say
                self._connection.invalidate()
            self._connection = None

    def close(self) -> None:
        with self._held:
            self._cursor = None
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None

    def remembered(self, secret: str, epoch: int | None = None) -> Caller | None:
        """The caller of a remembered admission still valid now, else None: check it in full. ``epoch`` is
        the trail's newest id when the caller read it after the request arrived; else it is read here."""
        known = self._known(secret)
        if known is None:
            return None
        return self._still(known, self.epoch() if epoch is None else epoch)

    def admit(self, secret: str) -> Caller:
        """The caller a secret proves, allowed to predict: remembered, or checked in full (raising on a refusal)."""
        known = self._known(secret)
        epoch = self.epoch()  # one read: it confirms a remembered admission, or dates a new one
        if known is not None:
            still = self._still(known, epoch)
            if still is not None:
                return still
        caller, expires_at = self.check(secret)  # raises on a refusal: refusals are never remembered
        self.full_checks += 1
        with self._lock:  # with the id read before the check: a change committed during it is caught next time
            key = _key(secret)
            self._seen[key] = Admitted(caller, expires_at, epoch)
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)
        return caller

    def _known(self, secret: str) -> Admitted | None:
        with self._lock:
            known = self._seen.get(_key(secret))
        if known is None or (known.expires_at is not None and utc_now() >= known.expires_at):
            return None
        return known

    @staticmethod
    def _still(known: Admitted, epoch: int) -> Caller | None:
        return known.caller.anew() if known.epoch == epoch else None  # a request id of its own


def _key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
