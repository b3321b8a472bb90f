"""Where a command's records come from: this workspace's database, or the platform server that
MEDOPS_SERVER_URL names (the database then stays behind the server).

Either way a command gets the same JSON document, the service's ``to_json()`` form encoded as the
server encodes it, and prints it with the same code, so its output does not depend on where it ran.
The credential is the same too: MEDOPS_TOKEN, else the session of `medops login` (with
``--server`` for a server). A command with no server form refuses to run while the variable is set
(see ``open_workspace``), rather than quietly using a workspace on this machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from medops.cli.common import cli_caller, open_workspace
from medops.cli.common import server_url as server_url  # where the commands read it from
from medops.errors import InvalidInput, StoreError

if TYPE_CHECKING:
    from medops.caller import Caller
    from medops.client import Client
    from medops.services import Services

DEEPEST = 10_000  # the server's largest offset

Local = Callable[["Services", "Caller"], Any]


def client() -> Client:
    from medops.client import Client

    return Client.from_environment()


def segment(value: str) -> str:
    """One path segment of the API: a name, a NAME:VERSION or an id, with '/' and the like escaped."""
    if not value.strip():
        raise InvalidInput("an empty name or id was given", hint="name what to show: an id, NAME or NAME:VERSION")
    return quote(value, safe=":@")


def wire(value: Any) -> Any:
    """A document as it crosses the wire: times as text, tuples as lists (the server's encoding)."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def read(path: str, local: Local, *, params: Mapping[str, Any] | None = None) -> Any:
    """A document read from the server (GET ``path``), or made here by ``local`` from the services."""
    if server_url():
        return client().get(path, **dict(params or {}))
    return _here(local, writes=False)


def read_list(path: str, local: Local, *, limit: int, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Up to ``limit`` items of a paged list, newest first, gathered page by page from the server."""
    if not server_url():
        return list(_here(local, writes=False))[:limit]
    from medops.client import PAGE

    if limit > DEEPEST + PAGE:
        raise InvalidInput(
            f"--limit {limit:,} is deeper than a platform server pages (at most {DEEPEST + PAGE:,} items)",
            hint="narrow the filters (a model, a time range) instead",
        )
    return client().paged(path, limit=limit, **dict(params or {}))


def change(
    method: str,
    path: str,
    local: Local,
    *,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """A change made by the server (``method`` on ``path``), or here by ``local``; its document either way."""
    if server_url():
        query = {k: v for k, v in (params or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"params": query}
        if body is not None:
            kwargs["json"] = dict(body)
        return client().request(method, path, **kwargs)
    return _here(local, writes=True)


def download(path: str, local: Callable[[Services, Caller], tuple[str, bytes]]) -> tuple[str, bytes]:
    """Stored content and its SHA-256, checked: from the server (GET ``path``, whose ETag names the hash),
    or read here by ``local`` (the store checks the bytes against their digest as it reads them)."""
    if not server_url():
        found: tuple[str, bytes] = _with_services(local, writes=False)  # checked by the store as it read them
        return found
    return fetch_checked(path)


def fetch_checked(path: str) -> tuple[str, bytes]:
    """Immutable content from the server and its SHA-256, the bytes checked against the hash its ETag names."""
    data, digest = client().download(path)
    if hashlib.sha256(data).hexdigest() != digest:
        raise StoreError(f"the server's copy of {path} does not match its SHA-256: nothing was written")
    return digest, data


def acting_user() -> str | None:
    """Who the credential acts as (the name a password prompt shows), wherever the records are."""
    if server_url():
        return str(client().get("/v1/auth/whoami")["user"])
    with open_workspace() as ws:
        return cli_caller(ws, writes=True).user


def _here(local: Local, *, writes: bool) -> Any:
    return wire(_with_services(local, writes=writes))


def _with_services(local: Callable[[Services, Caller], Any], *, writes: bool) -> Any:
    """``local`` on this workspace's services, as the CLI's caller (``writes``: the command changes something)."""
    from medops.services import Services

    with open_workspace() as ws:
        return local(Services(ws), cli_caller(ws, writes=writes))
