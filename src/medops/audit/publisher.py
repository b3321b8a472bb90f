"""Publishing a signed checkpoint of every committed batch of audit events.

The trail calls ``before_write`` before it opens a write transaction, so a process that
could not sign (no key) or whose earlier checkpoint is still unpublished refuses before
anything is written, and ``publish`` right after the transaction commits. A publish that
fails after the commit is kept and retried before the next write; until it succeeds the
process writes nothing more, and verification names the batch as not anchored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.audit.checkpoint import Checkpoint, sign_checkpoint
from medops.audit.checkpoint_store import (
    CheckpointStore,
    interval_marked,
    mark_interval,
    publish_checkpoint,
    publish_token,
)
from medops.clock import parse_iso, to_iso, utc_now
from medops.errors import ConfigError, MedopsError, StoreError

if TYPE_CHECKING:
    from medops.audit.timestamps import TimestampAuthority  # imported only when configured

log = logging.getLogger(__name__)


class CheckpointPublisher:
    def __init__(
        self,
        store: CheckpointStore,
        origin: str,
        signing_key: Callable[[], Ed25519PrivateKey],
        *,
        authority: TimestampAuthority | None = None,
        timestamp_interval: float = 300.0,
    ) -> None:
        self.store = store
        self.origin = origin
        self.signing_key = signing_key
        self.authority = authority
        self.timestamp_interval = timestamp_interval
        self._unpublished: list[Checkpoint] = []
        self._stamped_interval = -1  # the last interval this process holds a token (or gave up) for

    def key(self) -> Ed25519PrivateKey:
        """The signing key, or a ConfigError saying why nothing may be written without it."""
        try:
            return self.signing_key()
        except MedopsError as exc:
            raise ConfigError(
                f"this process can't sign audit checkpoints, so it may not change anything: {exc.message}",
                hint=(exc.hint or "")
                + "; every change is anchored by a checkpoint signed with the workspace key (reading and "
                "verifying need only its public key)",
                code="checkpoint_key_missing",
            ) from exc

    def before_write(self) -> None:
        """Refuse to write when the batch could not be anchored: no key, or a checkpoint still unpublished."""
        self.key()
        while self._unpublished:
            pending = self._unpublished[0]
            try:
                publish_checkpoint(self.store, pending)
            except Exception as exc:  # noqa: BLE001 (any store error: the network, credentials, a full disk)
                raise StoreError(
                    f"the checkpoint of audit events {pending.first} to {pending.size} is still unpublished "
                    f"({_reason(exc)}); nothing more is written until it is",
                    hint=f"make the checkpoint store {self.store.url} writable again, then retry",
                ) from exc
            self._unpublished.pop(0)

    def publish(self, first: int, size: int, head: str) -> Checkpoint:
        """Sign and publish the checkpoint of a batch that has just committed."""
        checkpoint = sign_checkpoint(self.origin, first, size, head, to_iso(utc_now()), self.key())
        try:
            publish_checkpoint(self.store, checkpoint)
        except Exception as exc:  # noqa: BLE001
            self._unpublished.append(checkpoint)
            raise StoreError(
                f"the change was saved, but the checkpoint of its audit events {first} to {size} could not be "
                f"published ({_reason(exc)}); verification reports them as not anchored until it is",
                hint=f"make the checkpoint store {self.store.url} writable: the next change publishes it first",
            ) from exc
        self._timestamp(checkpoint)
        return checkpoint

    def _timestamp(self, checkpoint: Checkpoint) -> None:
        """At most one token per interval: the first checkpoint of each interval gets one.

        An authority that does not answer leaves the checkpoint anchored by its signature alone;
        verification warns about the interval without a token.
        """
        if self.authority is None:
            return
        # the interval of the checkpoint's own signed time: the one verification groups it by
        interval = math.floor(parse_iso(checkpoint.time).timestamp() / self.timestamp_interval)
        if interval == self._stamped_interval:
            return
        self._stamped_interval = interval  # one attempt per interval and process, answered or not
        try:
            if interval_marked(self.store, interval):
                return
            token = self.authority.stamp(checkpoint.body().encode("utf-8"))
            publish_token(self.store, checkpoint.name, token)
            mark_interval(self.store, interval, checkpoint.name)
        except Exception as exc:  # noqa: BLE001 (a timestamp is extra evidence; the write stands without it)
            log.warning("checkpoint %s has no timestamp token: %s", checkpoint.name, _reason(exc))


def _reason(exc: Exception) -> str:
    if isinstance(exc, MedopsError):
        return exc.message
    return (exc.strerror if isinstance(exc, OSError) else None) or f"{type(exc).__name__}: {exc}"
