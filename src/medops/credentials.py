"""Where a command finds the credential it acts with: MEDOPS_TOKEN, else the user's session file.

`medops login` keeps its session token in ``<session dir>/<workspace_id>.session``, readable by
its owner only, in the user's own folder (MEDOPS_SESSION_DIR, else ~/.medops/sessions), never
in the workspace: copying a workspace copies no one's login. This module only finds, writes and
removes that secret; medops.services.identity verifies it and makes the Caller.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from medops.config import Settings
from medops.errors import ConfigError

TOKEN_ENV = "MEDOPS_TOKEN"  # an API token, for automation and CI
SESSION_DIR_ENV = "MEDOPS_SESSION_DIR"
USER_HINT_ENV = "MEDOPS_USER"  # only the name `medops login` suggests: it grants nothing


@dataclass(frozen=True)
class Credential:
    """A secret a command presents, and where it was found (said in messages, never the secret)."""

    secret: str
    source: Literal["env", "session"]
    path: Path | None = None

    def __repr__(self) -> str:  # a traceback or a log line shows where from, not the secret
        return f"Credential(source={self.source!r}, path={self.path!r})"

    @property
    def where(self) -> str:
        return TOKEN_ENV if self.source == "env" else f"the session file {self.path}"


def session_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    value = env.get(SESSION_DIR_ENV)
    return Path(value).expanduser() if value else Path.home() / ".medops" / "sessions"


def session_file(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    return session_dir(env) / f"{settings.workspace_id}.session"


def user_hint(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get(USER_HINT_ENV) or None


def presented(settings: Settings, env: Mapping[str, str] | None = None) -> Credential | None:
    """MEDOPS_TOKEN if set, else this workspace's session file if there is one, else None."""
    env = os.environ if env is None else env
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        return Credential(token, "env")
    return stored_session(settings, env)


def stored_session(settings: Settings, env: Mapping[str, str] | None = None) -> Credential | None:
    """The session `medops login` kept for this workspace, if any; refused if others can read it."""
    return _read_private(session_file(settings, env))


def _read_private(path: Path) -> Credential | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the session file {path} can be read by other users; medops will not use it",
            hint=f"delete it and log in again (the new one is made readable by you only): rm {path}",
        )
    secret = path.read_text(encoding="ascii", errors="replace").strip()  # a damaged file fails verification
    return Credential(secret, "session", path) if secret else None


def save_session(settings: Settings, secret: str, env: Mapping[str, str] | None = None) -> Path:
    """Write the session token readable by its owner only (0600), in a folder only they can list (0700)."""
    return _write_private(session_file(settings, env), secret)


def _write_private(path: Path, secret: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix" and path.parent.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the session folder {path.parent} is open to other users; medops keeps logins only in a private one",
            hint=f"make it yours alone (chmod 700 {path.parent}), or point {SESSION_DIR_ENV} at a private folder",
        )
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # two logins at once don't collide
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path


def forget_session(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """Remove this workspace's session file; whether there was one."""
    path = session_file(settings, env)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


# --- a platform server's session (`medops login --server URL`) --------------------------------


def server_session_file(url: str, env: Mapping[str, str] | None = None) -> Path:
    """One file per server URL, beside the workspaces' sessions."""
    import hashlib

    return session_dir(env) / f"server-{hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:16]}.session"


def stored_server_session(url: str, env: Mapping[str, str] | None = None) -> Credential | None:
    return _read_private(server_session_file(url, env))


def save_server_session(url: str, secret: str, env: Mapping[str, str] | None = None) -> Path:
    return _write_private(server_session_file(url, env), secret)


def forget_server_session(url: str, env: Mapping[str, str] | None = None) -> bool:
    try:
        server_session_file(url, env).unlink()
    except FileNotFoundError:
        return False
    return True
