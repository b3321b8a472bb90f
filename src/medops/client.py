"""The Python SDK against a platform server: ``medops.Client`` for any resource, and the runs that
``medops.start_run`` logs there when MEDOPS_SERVER_URL is set (the database then stays behind the
server; the client needs only an API token, or the session of `medops login --server URL`).

A remote run is a BufferedRun, as a local one is: the same rules (a parameter set once, finite
metrics, batches of values or FLUSH_SECONDS, nothing lost on a failed send, a heartbeat, the end on
leaving the ``with`` block); only where the values go, and how many a batch holds, differ.

A client's first run is opened on the server at once, so a wrong token or a missing role stops
``start_run`` itself. Each later run (a tuning trial, a fold) is named by the client and opened
with its first write: a batch of values, its end, or DEFER_SECONDS after it began, whichever
comes first. A run that ends sooner is recorded whole in one request (one transaction on the
server: run.start, its values, its end). What that costs: such a run appears on the server up to
DEFER_SECONDS late, a permission lost in the meantime is reported by that first write, and a
client killed before it leaves no trace of the run (its buffered values are lost either way).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from medops.clock import utc_now
from medops.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    MedopsError,
    NotFound,
    PermissionDenied,
    StoreError,
    TooLarge,
)
from medops.training.tracking import FLUSH_EVERY, HEARTBEAT_SECONDS, MAX_ERROR, BufferedRun, check_key

SERVER_ENV = "MEDOPS_SERVER_URL"
PAGE = 500  # the server's largest page
TOKEN_ENV = "MEDOPS_TOKEN"
_BY_STATUS: dict[int, type[MedopsError]] = {
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: InvalidInput,
}


# how long a later run of a client may stay unknown to the server (see the module docstring)
DEFER_SECONDS = 1.0

# how long an idle keep-alive connection is reused: longer than a run's batches are apart (FLUSH_SECONDS), so a
# run keeps its connection; shorter than uvicorn keeps one open (5 s), so no request meets one it is closing
IDLE_SECONDS = 4.0


class Client:
    """One platform server, as one user (an API token or a session's secret)."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(
                f"the platform server's URL must start with http:// or https://, not {url[:40]!r}",
                hint="for example https://medops.example.org",
            )
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # at equal times (httpx and uvicorn both keep 5 s), a request sent as the server closes its end fails
        limits = httpx.Limits(keepalive_expiry=IDLE_SECONDS)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, limits=limits)
        self._opened_a_run = False  # the server has let this client open a run: its later ones may wait

    @classmethod
    def from_environment(cls) -> Client:
        """MEDOPS_SERVER_URL, with MEDOPS_TOKEN or else the session `medops login --server URL` kept; read here,
        where the SDK starts, and nowhere below."""
        from medops.credentials import stored_server_session

        url, token = os.environ.get(SERVER_ENV), os.environ.get(TOKEN_ENV, "").strip()
        if not url:
            raise InvalidInput(f"{SERVER_ENV} is not set", hint="the platform server's URL")
        if not token:
            kept = stored_server_session(url)
            if kept is None:
                raise AuthenticationFailed(
                    f"talking to {url} needs a login: medops login --server {url} (or an API token in {TOKEN_ENV})",
                    code="login_required",
                )
            token = kept.secret
        with _SHARED_LOCK:  # one client (its connections, its TLS context) per server and credential, per process
            shared = _SHARED.get((url, token))
            if shared is None:
                shared = _SHARED[(url, token)] = cls(url, token)
        return shared

    @classmethod
    def log_in(cls, url: str, username: str, password: str) -> tuple[Client, dict[str, Any]]:
        """A session on the server for a person (lockout applies there): the client, and the login's answer
        (its secret included, for the caller to keep)."""
        answer = cls(url, "").post("/v1/auth/login", {"username": username, "password": password, "cookie": False})
        return cls(url, answer["secret"]), answer

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (or bytes, for a download); a problem document becomes the matching MedopsError."""
        answer = self._answer(method, path, **kwargs)
        if answer.headers.get("content-type", "").startswith("application/json"):
            return answer.json()
        return answer.content

    def download(self, path: str) -> tuple[bytes, str]:
        """Immutable content and the SHA-256 the server names it by (its ETag), for the caller to check."""
        answer = self._answer("GET", path)
        return answer.content, answer.headers.get("etag", "").strip('"')

    def stream(self, path: str, out: IO[str], **params: Any) -> Mapping[str, str]:
        """A text download of any size (an export of the whole trail) written to ``out`` as it arrives; its
        headers."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            with self._http.stream("GET", path, params=query) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    raise _error(answer)
                for chunk in answer.iter_text():
                    out.write(chunk)
                return dict(answer.headers)
        except httpx.TransportError as exc:
            raise self._unanswered(exc) from None

    def _answer(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The server's answer, or the MedopsError its problem document (or its silence) stands for."""
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unanswered(exc) from None
        if answer.status_code >= 400:
            raise _error(answer)
        return answer

    def _unanswered(self, exc: httpx.TransportError) -> StoreError:
        return StoreError(f"the platform server at {self.url} did not answer ({type(exc).__name__})")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=dict(body or {}))

    def paged(self, path: str, *, limit: int, **params: Any) -> list[Any]:
        """Up to ``limit`` items of a paged list, newest first, gathered page by page (500 a page at most)."""
        found: list[Any] = []
        offset = 0
        while len(found) < limit:
            page = self.get(path, limit=min(PAGE, limit - len(found)), offset=offset, **params)
            found += page["items"]
            if page["next_offset"] is None:
                break
            offset = page["next_offset"]
        return found

    def runs(self, *, limit: int = 50, **filters: Any) -> list[dict[str, Any]]:
        """Runs newest first, with the filters of `medops runs list` (experiment, state, tag, metric, trials)."""
        return self.paged("/v1/runs", limit=limit, **filters)

    def start_run(
        self,
        experiment: str,
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        seed: int | None = None,
        parent: str | None = None,
    ) -> RemoteRun:
        """Open a run on the server; a run after this client's first is opened with its first write."""
        return self._start_run(experiment, name, params=params, tags=tags, seed=seed, parent=parent)

    def _start_run(
        self,
        experiment: str,
        name: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        seed: int | None = None,
        parent: str | None = None,
        parent_known: bool = False,
    ) -> RemoteRun:
        from medops.training.environment import environment_lock, host_name

        start = {
            "experiment": experiment,
            "name": name,
            "seed": seed,
            "parent": parent,
            "environment": _environment(environment_lock),
            "host": host_name(),
        }
        if self._opened_a_run and (parent is None or parent_known):
            check_key("experiment", experiment)  # what the server would refuse at once is refused here at once
            if name is not None and len(name) > 200:
                raise InvalidInput(f"a run's name has at most 200 characters, not {len(name)}")
            start["id"] = uuid.uuid4().hex
            start["name"] = name or f"{experiment}-{utc_now().strftime('%Y%m%d-%H%M%S')}"  # as the server names one
            run = RemoteRun(self, start, waiting=True)
        else:
            run = RemoteRun(self, self.post("/v1/runs", start))
            self._opened_a_run = True
        if params:
            run.log_params(params)
        if seed is not None:
            run.log_param("seed", seed)
        if tags:
            run.set_tags(tags)
        return run

    def close(self) -> None:
        self._http.close()


_SHARED: dict[tuple[str, str], Client] = {}
_SHARED_LOCK = threading.Lock()
_ENVIRONMENT: list[str] = []  # one lock per process, as a local tracker stores it once


def _environment(lock: Any) -> str:
    if not _ENVIRONMENT:
        _ENVIRONMENT.append(str(lock()))
    return _ENVIRONMENT[0]


def _error(answer: httpx.Response) -> MedopsError:
    try:
        doc = answer.json()
    except ValueError:
        doc = {}
    detail = str(doc.get("detail") or f"the server answered {answer.status_code}")
    kind = _BY_STATUS.get(answer.status_code, StoreError)
    return kind(detail, code=doc.get("code") or kind.code, hint=doc.get("hint"))


def _batch(
    params: Mapping[str, str], tags: Mapping[str, str], metrics: Sequence[tuple[str, int, float, datetime]]
) -> dict[str, Any]:
    # the run's own UTC times (utc_now): isoformat is their ISO 8601 at a tenth of strftime's cost per value
    sent = [{"key": k, "step": step, "value": v, "at": at.isoformat()} for k, step, v, at in metrics]
    return {"params": dict(params), "tags": dict(tags), "metrics": sent}


class RemoteRun(BufferedRun):
    """A run logged to a platform server (see the module docstring); use it as a context manager."""

    # A request costs a round trip, a credential check and a committed transaction whatever it holds:
    # five times a local batch (about 400 KB of JSON, under the server's 1 MB body limit). FLUSH_SECONDS
    # still bounds what a client that dies can lose.
    flush_every = 5 * FLUSH_EVERY

    def __init__(self, client: Client, made: Mapping[str, Any], *, waiting: bool = False) -> None:
        """``made``: the server's answer to the run's start; ``waiting``: the start itself, not sent yet."""
        from medops.training.environment import start_git_state

        self.client = client
        self._git = start_git_state(Path.cwd())
        self._began = time.monotonic()
        self._waiting = dict(made) if waiting else None  # the start request, until the server has the run
        self._opening = threading.Lock()
        state = "running" if waiting else made["state"]
        first = DEFER_SECONDS if waiting else None
        super().__init__(made["id"], made["experiment"], made["name"], state, HEARTBEAT_SECONDS, first_beat=first)

    def _open(self, end: Mapping[str, Any] | None = None) -> Any:
        """Send the waiting start (with ``end``, the whole run); the server's answer, or None if it has the run."""
        with self._opening:
            if self._waiting is None:
                return None
            answer = self.client.post(
                "/v1/runs", {**self._waiting, "elapsed": time.monotonic() - self._began, "end": end}
            )
            self._waiting = None
            return answer

    def _write(
        self, params: Mapping[str, str], tags: Mapping[str, str], metrics: Sequence[tuple[str, int, float, datetime]]
    ) -> None:
        self._open()
        self.client.post(f"/v1/runs/{self.id}/log", _batch(params, tags, metrics))

    def _beat_once(self) -> None:
        if self._open() is None:  # opening the run says it is alive
            self.client.post(f"/v1/runs/{self.id}/heartbeat")

    def end(self, state: Literal["finished", "failed", "killed"] = "finished", error: str | None = None) -> None:
        """The end and the last values in one request (one transaction on the server; for a run the server
        doesn't have yet, the whole run); if it fails, the values go back to the buffer and the run is
        ended failed."""
        if self.state != "running":
            return
        self._stop_beating()
        git = self._git()
        batch = self._take()
        body = {"state": state, "error": error, "git_commit": git.commit, "git_dirty": git.dirty, **_batch(*batch)}
        try:
            self.state = (self._open(body) or self.client.post(f"/v1/runs/{self.id}/end", body))["state"]
        except MedopsError as exc:
            self._restore(batch)
            error = f"its last values could not be stored: {exc}"[:MAX_ERROR]
            ended = {"state": "failed", "error": error, "git_commit": git.commit, "git_dirty": git.dirty}
            self.state = (self._open(ended) or self.client.post(f"/v1/runs/{self.id}/end", ended))["state"]
            raise

    def child(self, name: str, **kwargs: Any) -> RemoteRun:
        """A nested run (a tuning trial, say) of the same experiment; the server gets this run first."""
        self._open()
        return self.client._start_run(self.experiment, name, parent=self.id, parent_known=True, **kwargs)

    def __enter__(self) -> RemoteRun:
        return self
