"""The backends a setting can name, registered once: config checks, CLI help and hints read them here.

A setting names its backend by a word (``sqlite``, ``local``, ``dask-local``) or by the
scheme of a URL (``redis://host:6379/0``, ``dask://host:8786``). Each kind of backend has
one registry below, and the built-in backends are registered in it next to each other.
A built-in backend's code is named by module and attribute and imported only when the
backend is opened or checked, so validating settings or printing help loads no backend
library (and this module, at the bottom of the layers, imports none of theirs).

Code outside medops adds a backend with the kind's registration function (for online
stores, ``medops.features.online.register_online_store``); from then on the settings
accept it and every hint and help text lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from medops.errors import ConfigError
from medops.urls import redact_url


@dataclass(frozen=True)
class Backend:
    """One backend: the names and URL schemes it answers to, and how to open and check it.

    ``open`` builds the backend from the setting's value (its arguments depend on the kind);
    ``check`` tries it (``medops doctor``) and returns a line saying what answered, or
    raises a MedopsError saying what did not; ``examples`` are values shown in help and hints.
    """

    name: str
    open: Callable[..., Any]
    words: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    check: Callable[[str], str] | None = None

    def accepts(self, value: str) -> bool:
        """Whether ``value`` names this backend: one of its words, or a URL with one of its schemes."""
        if value in self.words:
            return True
        scheme, sep, _ = value.partition("://")
        return bool(sep) and scheme in self.schemes


class Registry:
    """The backends one setting can name, in the order they were registered."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        self._backends: dict[str, Backend] = {}

    def register(self, backend: Backend) -> Backend:
        """Add a backend; a name, word or scheme another backend already answers to is refused."""
        if not backend.words and not backend.schemes:
            raise ConfigError(f"{self.setting} backend {backend.name!r} answers to no word and no URL scheme")
        if backend.name in self._backends:
            raise ConfigError(f"{self.setting} backend {backend.name!r} is registered already")
        for other in self._backends.values():
            shared = sorted({*backend.words} & {*other.words} | {*backend.schemes} & {*other.schemes})
            if shared:
                raise ConfigError(
                    f"{self.setting} backend {backend.name!r} would answer to {shared[0]!r}, "
                    f"which backend {other.name!r} answers to"
                )
        self._backends[backend.name] = backend
        return backend

    def unregister(self, name: str) -> None:
        """Remove a backend registered by name (a plugin unloading, a test cleaning up)."""
        if self._backends.pop(name, None) is None:
            raise ConfigError(f"{self.setting} backend {name!r} is not registered")

    def names(self) -> list[str]:
        return list(self._backends)

    def examples(self) -> list[str]:
        """Values a user can give, every backend's examples in registration order."""
        return [example for backend in self._backends.values() for example in backend.examples]

    def choices(self) -> str:
        """The examples as prose for help texts: ``a, b or c``."""
        examples = self.examples()
        return examples[0] if len(examples) == 1 else f"{', '.join(examples[:-1])} or {examples[-1]}"

    def find(self, value: str) -> Backend:
        """The backend ``value`` names; a ConfigError (password masked) listing what is known if none."""
        for backend in self._backends.values():
            if backend.accepts(value):
                return backend
        raise ConfigError(f"{self.setting} {redact_url(value)!r} is not known", hint=f"use {self.choices()}")


def lazy(module: str, attribute: str) -> Callable[..., Any]:
    """A function that imports ``module`` and calls its ``attribute`` only when first called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(import_module(module), attribute)(*args, **kwargs)

    call.__qualname__ = call.__name__ = f"{module}.{attribute}"
    return call


ONLINE_STORES = Registry("online_store")
ONLINE_STORES.register(
    Backend(
        "sqlite",
        lazy("medops.features.online.sqlite", "open_store"),
        words=("sqlite",),
        schemes=("sqlite",),
        examples=("sqlite", "sqlite:////path/online.db"),
        check=lazy("medops.features.online.sqlite", "check"),
    )
)
ONLINE_STORES.register(
    Backend(
        "redis",
        lazy("medops.features.online.redis", "open_store"),
        schemes=("redis", "rediss"),
        examples=("redis://host:6379/0",),
        check=lazy("medops.features.online.redis", "check"),
    )
)

EXECUTORS = Registry("executor")
EXECUTORS.register(
    Backend(
        "local",
        lazy("medops.features.executor", "open_local"),
        words=("local",),
        examples=("local",),
        check=lazy("medops.features.executor", "check_local"),
    )
)
EXECUTORS.register(
    Backend(
        "dask",
        lazy("medops.features.executor", "DaskExecutor"),
        words=("dask-local",),
        schemes=("dask",),
        examples=("dask-local", "dask://host:8786"),
        check=lazy("medops.features.executor", "check_dask"),
    )
)
