"""The online feature store: the latest feature values per entity, for low-latency lookups.

One module per backend: ``sqlite`` (the default; one file, WAL) and ``redis`` (shared).
``base`` holds the interface every backend implements and the checks and JSON encoding
they share. Backends are registered by name and URL scheme in ``medops.backends``
(``ONLINE_STORES``), which the ``online_store`` setting, ``medops doctor`` and every hint read;
``register_online_store`` adds one from outside medops.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from medops.backends import ONLINE_STORES, Backend
from medops.errors import ConfigError
from medops.features.online.base import OnlineRow, OnlineStore, check_name
from medops.lazy import members

if TYPE_CHECKING:
    from medops.features.online.redis import RedisOnlineStore
    from medops.features.online.sqlite import SqliteOnlineStore


class OpenOnlineStore(Protocol):
    """How a backend is opened: from the setting's value, the workspace folder and its namespace."""

    def __call__(self, url: str, *, home: Path, namespace: str) -> OnlineStore: ...


def open_online_store(url: str, *, home: Path, namespace: str) -> OnlineStore:
    """Open the online store named by ``url``; nothing connects until the first call.

    ``namespace`` (the workspace id) prefixes every key and row, so workspaces sharing a
    Redis or a SQLite file never see each other's tables.
    """
    check_name("namespace", namespace, ConfigError)
    store: OnlineStore = ONLINE_STORES.find(url).open(url, home=home, namespace=namespace)
    return store


def online_store_kind(url: str) -> str:
    """The registered name of the backend ``url`` names (``sqlite``, ``redis``...), as audit events record it."""
    return ONLINE_STORES.find(url).name


def register_online_store(
    name: str,
    open: OpenOnlineStore,
    *,
    words: tuple[str, ...] = (),
    schemes: tuple[str, ...] = (),
    examples: tuple[str, ...] = (),
    check: Callable[[str], str] | None = None,
) -> None:
    """Make ``online_store`` accept a backend: the values ``words`` and URLs with one of ``schemes``.

    ``examples`` are shown in hints and help; ``check`` (for ``medops doctor``) returns a line
    saying what answered or raises a MedopsError. A name, word or scheme already taken is refused.
    """
    ONLINE_STORES.register(Backend(name, open, words=words, schemes=schemes, examples=examples or words, check=check))


def unregister_online_store(name: str) -> None:
    """Remove a backend ``register_online_store`` added."""
    ONLINE_STORES.unregister(name)


__all__ = [
    "OnlineRow",
    "OnlineStore",
    "OpenOnlineStore",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "online_store_kind",
    "open_online_store",
    "register_online_store",
    "unregister_online_store",
]

__getattr__ = members(__name__, {"RedisOnlineStore": "redis", "SqliteOnlineStore": "sqlite"})
