"""Workspace settings: read from medops.toml, overridden by MEDOPS_* environment variables."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from medops import filesystems
from medops.backends import EXECUTORS, ONLINE_STORES
from medops.errors import ConfigError, WorkspaceNotFound
from medops.urls import redact_url as redact_url  # re-exported: its callers import it from here

CONFIG_FILE = "medops.toml"
DEFAULT_DB_FILE = "medops.db"
DEFAULT_ARTIFACT_DIR = "artifacts"
DEFAULT_ARTIFACT_CACHE = "artifact-cache"  # local copies of a non-local root's artifacts, for readers that need a path
KEY_DIR_ENV = "MEDOPS_KEY_DIR"
MAX_SESSION_HOURS = 168.0
PREDICTION_LOG_SYNC = ("background", "before_answer")  # the first is the default (medops.serving.spool says why)


@dataclass(frozen=True)
class Settings:
    """The effective, validated configuration of one workspace."""

    home: Path
    workspace_id: str
    metadata_url: str
    artifact_root: str
    default_user: str = "admin"
    online_store: str = "sqlite"
    executor: str = "local"
    signing_key_file: str = ""
    db_busy_timeout: float = 30.0
    pseudonym_key_file: str = ""
    project_file: str = "medops.yaml"  # the reviewed project file whose policy gates production
    artifact_cache: str = ""  # local folder for copies of artifacts from a non-local root ("": a temp folder)
    # The workspace's Ed25519 public key, pinned here at init: it alone verifies signatures, checkpoints
    # and the bundle keyring, never a key read from the database ("": an older workspace, see keys.py).
    signing_public_key: str = ""
    session_hours: float = 12.0  # how long a `medops login` lasts
    login_for_reads: bool = False  # whether read-only commands also need a login
    checkpoint_store: str = ""  # where signed audit checkpoints go ("": beside the signing key, see checkpoint_root)
    checkpoint_grace: float = 10.0  # seconds an event may wait for its checkpoint before verify calls it unanchored
    clock_tolerance: float = 5.0  # seconds an event time may lag the trail's last one (clocks of several writers)
    timestamp_authority: str = ""  # RFC 3161 time-stamping authority URL ("": none)
    timestamp_authority_cert: str = ""  # PEM file: the authority's certificate, then its chain up to the root
    timestamp_interval: float = 300.0  # at most one timestamp token per this many seconds
    # local folder where servers keep predictions until the database has them ("": spool/ inside home)
    prediction_spool: str = ""
    # when an answer may be sent: "background" once its record is in the operating system (a killed server
    # loses nothing; a power loss may lose the last 50 ms), "before_answer" once it is on disk
    prediction_log_sync: str = PREDICTION_LOG_SYNC[0]

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def checkpoint_root(self) -> str:
        """The checkpoint store: the setting, else a folder beside the signing key, outside the workspace."""
        key_file = self.signing_key_file or str(default_key_dir() / f"{self.workspace_id}.ed25519")
        return self.checkpoint_store or default_checkpoint_store(key_file)

    @property
    def prediction_spool_root(self) -> Path:
        """Local and writable: a server keeps each prediction here until the metadata store holds it."""
        return (
            Path(resolve_local(self.home, self.prediction_spool))
            if self.prediction_spool
            else self.home / "spool" / "predictions"
        )

    def redacted(self) -> dict[str, str]:
        """Settings as strings with any password in a URL masked, for display."""
        out = {}
        for f in fields(self):
            value = str(getattr(self, f.name))
            out[f.name] = redact_url(value)
        return out


# Keys a medops.toml may hold, with the type each must have.
_FILE_KEYS: dict[str, type] = {
    "workspace_id": str,
    "metadata_url": str,
    "artifact_root": str,
    "default_user": str,
    "online_store": str,
    "executor": str,
    "signing_key_file": str,
    "db_busy_timeout": float,
    "pseudonym_key_file": str,
    "project_file": str,
    "artifact_cache": str,
    "signing_public_key": str,
    "session_hours": float,
    "login_for_reads": bool,
    "checkpoint_store": str,
    "checkpoint_grace": float,
    "clock_tolerance": float,
    "timestamp_authority": str,
    "timestamp_authority_cert": str,
    "timestamp_interval": float,
    "prediction_spool": str,
    "prediction_log_sync": str,
}
# Settings the environment can't override: the governing policy, the pinned key and the login rules
# are the workspace's, not one command's (or one user's: a longer session is not theirs to choose).
_FILE_ONLY = {"workspace_id", "project_file", "signing_public_key", "session_hours", "login_for_reads"}


def default_key_dir() -> Path:
    """Signing keys live outside every workspace, so copying a workspace never copies them."""
    env = os.environ.get(KEY_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".medops" / "keys"


def default_checkpoint_store(signing_key_file: str) -> str:
    """``<key file without its suffix>.checkpoints``: beside the key, so a copy or restore of the
    workspace (database and artifacts) never carries the checkpoints that would expose it."""
    return str(Path(signing_key_file).with_suffix(".checkpoints"))


def find_home(start: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Locate the workspace: MEDOPS_HOME, else the nearest folder upward holding medops.toml."""
    env = os.environ if env is None else env
    if env.get("MEDOPS_HOME"):
        home = Path(env["MEDOPS_HOME"]).expanduser().resolve()
        if not (home / CONFIG_FILE).is_file():
            raise WorkspaceNotFound(
                f"MEDOPS_HOME={home} holds no {CONFIG_FILE}",
                code="workspace_home_empty",
                home=str(home),
            )
        return home
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise WorkspaceNotFound(f"no medops workspace in {here} or any folder above it")


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"can't read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", hint="fix the file, or compare it with a new workspace's medops.toml"
        ) from exc
    for key, value in data.items():
        if key not in _FILE_KEYS:
            known = ", ".join(sorted(_FILE_KEYS))
            raise ConfigError(f"{path}: unknown setting {key!r}", hint=f"known settings: {known}")
        expected = _FILE_KEYS[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            data[key] = value
        if not isinstance(value, expected):
            raise ConfigError(f"{path}: setting {key!r} must be a {expected.__name__}, got {type(value).__name__}")
    if "workspace_id" not in data:
        raise ConfigError(f"{path}: required setting 'workspace_id' is missing")
    return data


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, expected in _FILE_KEYS.items():
        name = f"MEDOPS_{key.upper()}"
        if key in _FILE_ONLY or name not in env:
            continue
        raw = env[name]
        if expected is float:
            try:
                out[key] = float(raw)
            except ValueError as exc:
                raise ConfigError(f"environment variable {name}={raw!r} is not a number") from exc
        else:
            out[key] = raw
    return out


def resolve_local(home: Path, value: str) -> str:
    """A bare path is relative to the workspace; a URL is kept as given."""
    if "://" in value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (home / path))


def _resolve_db_url(home: Path, url: str) -> str:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///") :]
        if rel and rel != ":memory:" and not Path(rel).is_absolute():
            return f"sqlite:///{home / rel}"
    return url


def load_settings(home: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the workspace's settings; environment variables win over the file."""
    env = os.environ if env is None else env
    home = home.resolve() if home else find_home(env=env)
    data = read_config_file(home / CONFIG_FILE)
    # The checkpoints stay where the workspace's key file is, even when one process is pointed at
    # another key (MEDOPS_SIGNING_KEY_FILE): only checkpoint_store itself moves them.
    key_of_file = data.get("signing_key_file") or str(default_key_dir() / f"{data['workspace_id']}.ed25519")
    data.update(_env_overrides(env))
    workspace_id = data["workspace_id"]
    settings = Settings(
        home=home,
        workspace_id=workspace_id,
        metadata_url=_resolve_db_url(home, data.get("metadata_url", f"sqlite:///{DEFAULT_DB_FILE}")),
        artifact_root=resolve_local(home, data.get("artifact_root", DEFAULT_ARTIFACT_DIR)),
        default_user=data.get("default_user", "admin"),
        online_store=data.get("online_store", "sqlite"),
        executor=data.get("executor", "local"),
        signing_key_file=data.get("signing_key_file") or str(default_key_dir() / f"{workspace_id}.ed25519"),
        db_busy_timeout=data.get("db_busy_timeout", 30.0),
        pseudonym_key_file=data.get("pseudonym_key_file") or str(default_key_dir() / f"{workspace_id}.pseudonym"),
        project_file=data.get("project_file", "medops.yaml"),
        artifact_cache=resolve_local(home, data.get("artifact_cache", DEFAULT_ARTIFACT_CACHE)),
        signing_public_key=data.get("signing_public_key", ""),
        session_hours=data.get("session_hours", 12.0),
        login_for_reads=data.get("login_for_reads", False),
        checkpoint_grace=data.get("checkpoint_grace", 10.0),
        clock_tolerance=data.get("clock_tolerance", 5.0),
        timestamp_authority=data.get("timestamp_authority", ""),
        timestamp_authority_cert=resolve_local(home, data["timestamp_authority_cert"])
        if data.get("timestamp_authority_cert")
        else "",
        timestamp_interval=data.get("timestamp_interval", 300.0),
        prediction_spool=data.get("prediction_spool", ""),
        prediction_log_sync=data.get("prediction_log_sync", Settings.prediction_log_sync),
    )
    checkpoints = data.get("checkpoint_store")
    settings = replace(
        settings,
        checkpoint_store=resolve_local(home, checkpoints) if checkpoints else default_checkpoint_store(key_of_file),
    )
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    scheme = settings.metadata_url.split(":", 1)[0]
    if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
        raise ConfigError(
            f"metadata_url scheme {scheme!r} is not supported",
            hint="use sqlite:///path/to/medops.db or postgresql+psycopg://user@host:5432/db",
        )
    filesystems.for_root(settings.artifact_root)
    if "://" in settings.artifact_cache:
        raise ConfigError(
            f"artifact_cache {settings.artifact_cache!r} must be a local folder",
            hint="it holds local copies of artifacts for readers that need a file; the store itself is artifact_root",
        )
    if settings.db_busy_timeout <= 0:
        raise ConfigError("db_busy_timeout must be a positive number of seconds")
    if not 0 < settings.session_hours <= MAX_SESSION_HOURS:
        raise ConfigError(
            f"session_hours must be more than 0 and at most {MAX_SESSION_HOURS:g} (a login lasts at most a week)",
            hint="for automation, use an API token (medops token create) instead of a long session",
        )
    _validate_anchoring(settings)
    if settings.prediction_log_sync not in PREDICTION_LOG_SYNC:
        raise ConfigError(
            f"prediction_log_sync {settings.prediction_log_sync!r} is not one of {', '.join(PREDICTION_LOG_SYNC)}",
            hint="background: an answer is sent once its record is in the operating system (a killed server loses "
            "nothing); before_answer: once it is on disk (a power loss loses nothing, at a cost per request)",
        )
    EXECUTORS.find(settings.executor)
    ONLINE_STORES.find(settings.online_store)


def _validate_anchoring(settings: Settings) -> None:
    """The checkpoint store and the time-stamping authority: checked before anything is written."""
    try:
        filesystems.for_root(settings.checkpoint_root)
    except ConfigError as exc:
        raise ConfigError(
            f"checkpoint_store {settings.checkpoint_root!r}: no filesystem for its scheme", hint=exc.hint
        ) from exc
    for name in ("checkpoint_grace", "clock_tolerance", "timestamp_interval"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds")
    url = settings.timestamp_authority
    if url and not url.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"timestamp_authority {url!r} is not an http(s) URL", hint="RFC 3161 authorities answer over HTTP"
        )
    if url and not settings.timestamp_authority_cert:
        raise ConfigError(
            "timestamp_authority is set but timestamp_authority_cert is not",
            hint="name a PEM file with the authority's certificate and its chain: tokens are checked against it",
        )


def render_config(values: Mapping[str, Any]) -> str:
    """Write settings as TOML; strings use JSON quoting, which TOML basic strings accept."""
    lines = ["# medops workspace settings; MEDOPS_<SETTING> environment variables override these."]
    for key, value in values.items():
        if key not in _FILE_KEYS:
            raise ConfigError(f"unknown setting {key!r}")
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)
