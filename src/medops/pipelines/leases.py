"""Named leases in the metadata store: at most one holder at a time, across processes and machines.

A lease is a row (name, holder, expiry). Taking it succeeds when there is no row, when the row
has expired, or when its holder is a process of this machine that no longer exists (a kill -9
need not wait for the expiry). The holder renews it while it works; a holder that stops
renewing loses it at the expiry, so a crashed machine never blocks the others for longer than
the lease's length.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from medops.clock import utc_now
from medops.errors import Conflict
from medops.store.database import Database
from medops.store.schema import Lease

DEFAULT_SECONDS = 60.0


def holder_id() -> str:
    """``host:pid:nonce``: unique to this process and this taking."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process_gone(holder: str) -> bool:
    """True when ``holder`` names a process of this machine that has ended."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@dataclass(frozen=True)
class Held:
    name: str
    holder: str


def take(db: Database, name: str, *, seconds: float = DEFAULT_SECONDS, holder: str | None = None) -> Held | None:
    """The lease, or None when someone else holds it."""
    me = holder or holder_id()
    now = utc_now()
    for _attempt in (1, 2):  # a race on the first insert: the loser reads the winner's row and decides again
        try:
            with db.write() as session:
                row = session.get(Lease, name, with_for_update=True)
                if row is not None and row.holder != me and row.expires_at > now and not process_gone(row.holder):
                    return None
                if row is None:
                    session.add(
                        Lease(name=name, holder=me, acquired_at=now, expires_at=now + timedelta(seconds=seconds))
                    )
                else:
                    row.holder, row.acquired_at, row.expires_at = me, now, now + timedelta(seconds=seconds)
            return Held(name, me)
        except Conflict:
            continue
    return None


def holder(db: Database, name: str) -> str | None:
    """Who holds the lease now (None when nobody does, or the holder's time is up)."""
    with db.read() as session:
        row = session.get(Lease, name)
    if row is None or row.expires_at <= utc_now() or process_gone(row.holder):
        return None
    return row.holder


def renew(db: Database, held: Held, *, seconds: float = DEFAULT_SECONDS) -> bool:
    """Push the expiry on; False when the lease was lost (it expired and someone else took it)."""
    with db.write() as session:
        row = session.get(Lease, held.name, with_for_update=True)
        if row is None or row.holder != held.holder:
            return False
        row.expires_at = utc_now() + timedelta(seconds=seconds)
    return True


def release(db: Database, held: Held) -> None:
    with db.write() as session:
        session.execute(delete(Lease).where(Lease.name == held.name, Lease.holder == held.holder))


class Keeper:
    """Renews a lease on a thread until closed; ``lost`` is set if a renewal finds it gone."""

    def __init__(self, db: Database, held: Held, seconds: float = DEFAULT_SECONDS) -> None:
        self.db, self.held, self.seconds = db, held, seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"medops-lease-{held.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not renew(self.db, self.held, seconds=self.seconds):
                    self.lost.set()
                    return
            except Exception:  # the database hiccuped: try again next beat, the expiry leaves room for two misses
                continue

    def close(self, *, release_it: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if release_it and not self.lost.is_set():
            release(self.db, self.held)


__all__ = ["Held", "Keeper", "holder", "holder_id", "process_gone", "release", "renew", "take"]
