"""Health checks for a workspace: each says what is wrong and how to fix it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from medops.audit.state_check import check_state
from medops.backends import EXECUTORS, ONLINE_STORES
from medops.config import Settings, load_settings
from medops.credentials import Credential
from medops.errors import MedopsError
from medops.identity.keys import ENV_KEY, load_private_key
from medops.identity.pseudonym_key import KEY_ENV, MISSING, load_key
from medops.platform import Platform
from medops.private_files import exposed
from medops.public_keys import encode_public
from medops.store import migrate
from medops.store.artifacts import ArtifactStore
from medops.store.database import Database

OK, WARN, FAIL = "ok", "warn", "fail"
CredentialLookup = Callable[[Settings], Credential | None]


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def report_json(settings: Settings | None, checks: list[Check], *, show_config: bool = True) -> dict[str, Any]:
    """A doctor's findings as `medops doctor --json` and the platform API give them (secrets redacted)."""
    return {
        "ok": not any(c.status == FAIL for c in checks),
        "settings": dict(sorted(settings.redacted().items())) if settings is not None and show_config else None,
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix} for c in checks],
    }


def _error(name: str, exc: MedopsError) -> Check:
    return Check(name, FAIL, exc.message, exc.hint or "")


def run_checks(
    home: Path | None = None, *, credential: CredentialLookup | None = None
) -> tuple[Settings | None, list[Check]]:
    """Run every check that can run; later checks are skipped when what they need failed.

    ``credential`` finds what the adapter's commands would present (the CLI: MEDOPS_TOKEN or
    the login session); the check says whom it proves and until when, or that nobody is logged in.
    """
    try:
        settings = load_settings(home)
    except MedopsError as exc:
        return None, [_error("config", exc)]
    checks = [Check("config", OK, f"{settings.config_path} is valid")]
    db = None
    try:
        db = Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout)
        db.ping()
        checks.append(Check("metadata database", OK, f"reachable at {db.display_url}"))
    except MedopsError as exc:
        checks.append(_error("metadata database", exc))
        db = None
    if db is not None:
        checks.extend(_schema_and_data_checks(db, settings, credential))
        db.dispose()
    checks.append(_artifact_check(settings))
    checks.append(_pseudonym_key_check(settings))
    checks.append(_permissions_check(settings))
    checks.extend(_server_checks(settings))
    return settings, checks


def _schema_and_data_checks(db: Database, settings: Settings, credential: CredentialLookup | None) -> list[Check]:
    try:
        state = migrate.status(db)
    except MedopsError as exc:
        return [_error("schema", exc)]
    if not state.known:
        return [
            Check(
                "schema",
                FAIL,
                f"revision {state.current} is newer than this medops ({state.head})",
                "upgrade medops to the version that wrote this workspace",
            )
        ]
    if not state.up_to_date:
        return [
            Check(
                "schema",
                FAIL,
                f"revision {state.current or 'none'}, this medops needs {state.head}",
                "run `medops db upgrade`",
            )
        ]
    out = [Check("schema", OK, f"at revision {state.head}")]
    ws = Platform.from_settings(settings, check_schema=False)
    try:
        out.append(_signing_check(ws))
        if credential is not None:
            out.append(_login_check(ws, credential))
        out.append(_checkpoint_store_check(ws))
        out.append(_audit_check(ws))
        out.append(_state_check(ws))
    finally:
        ws.db.dispose()
    return out


def _state_check(ws: Platform) -> Check:
    rows = check_state(ws.db)
    if rows.ok:
        return Check("governed state", OK, f"{rows.checked} governed rows match their latest audit events")
    named = "; ".join(f"{p.entity_type}:{p.entity_id} {p.kind}" for p in rows.problems[:5])
    more = f" and {len(rows.problems) - 5} more" if len(rows.problems) > 5 else ""
    return Check(
        "governed state",
        FAIL,
        f"{len(rows.problems)} governed rows changed outside medops: {named}{more}",
        "run `medops audit verify --state` for the details, then restore those rows from a verified backup",
    )


def _signing_check(ws: Platform) -> Check:
    """Where the key is matters: it lives outside the workspace, so a copied workspace has none and can't sign."""
    where = ENV_KEY if os.environ.get(ENV_KEY) else ws.settings.signing_key_file
    try:
        public = encode_public(load_private_key(ws.settings).public_key())
    except MedopsError as exc:
        return Check(
            "signing key",
            FAIL,
            f"{exc.message} (looked in {where})",
            "the key stays outside the workspace: copy it from the machine the workspace came from, or set "
            "signing_key_file in medops.toml; without it nothing can be signed or promoted",
        )
    try:
        ws.workspace_public_key()
    except MedopsError as exc:
        return _error("signing key", exc)
    if not ws.settings.signing_public_key:
        return Check(
            "signing key",
            WARN,
            f"{where}: present and private, but its public key is not pinned in medops.toml",
            f'add signing_public_key = "{public}" to medops.toml: verifiers then trust that key and no other',
        )
    return Check("signing key", OK, f"{where}: present, private, and the key pinned in medops.toml")


def _audit_check(ws: Platform) -> Check:
    try:
        report = ws.verify_audit()
    except MedopsError as exc:
        return _error("audit trail", exc)
    if report.problem is None:
        anchored = (
            f", matches {report.checkpoints} checkpoints up to event {report.anchored_at}" if report.anchored_at else ""
        )
        detail = f"{report.chain.checked} events, chain intact{anchored}"
        if report.warnings:
            return Check("audit trail", WARN, f"{detail}; {'; '.join(report.warnings)}", "see `medops audit verify`")
        return Check("audit trail", OK, detail)
    more = f" (and {len(report.problems) - 1} more problems)" if len(report.problems) > 1 else ""
    return Check(
        "audit trail",
        FAIL,
        f"broken at event {report.problem.seq} ({report.problem.kind}): {report.problem.detail}{more}",
        "run `medops audit verify` and restore the database from a verified backup",
    )


def _checkpoint_store_check(ws: Platform) -> Check:
    """Apart from the workspace, and kept: the checkpoints are what a copy of the workspace can't fake."""
    root = ws.settings.checkpoint_root
    store = ws.checkpoints
    if not store.persistent:
        return Check(
            "checkpoint store",
            FAIL,
            f"{root} is gone when the process ends: nothing anchors the audit trail",
            "set checkpoint_store to a folder outside the workspace or an object store with Object Lock",
        )
    if store.local:
        where = Path(store.root).resolve()
        for name, folder in (("the workspace", ws.settings.home), ("the artifact store", ws.settings.artifact_root)):
            if "://" not in str(folder) and where.is_relative_to(Path(folder).resolve()):
                return Check(
                    "checkpoint store",
                    WARN,
                    f"{root} is inside {name}: a copy or restore of it carries the checkpoints along",
                    "set checkpoint_store to a folder outside the workspace (by default it is beside the signing key)",
                )
    return Check("checkpoint store", OK, f"{root}")


def _login_check(ws: Platform, lookup: CredentialLookup) -> Check:
    """Who commands act as: a name alone grants nothing, so it is the verified credential's user or nobody."""
    reads = "reads need a login too" if ws.settings.login_for_reads else "reads run without one"
    found: Credential | None = None
    try:
        found = lookup(ws.settings)
        if found is None:
            return Check("acting user", WARN, f"not logged in (changes need a login; {reads})", "run `medops login`")
        user, token = ws.tokens.verify(found.secret)
    except MedopsError as exc:
        fix = "get a new API token or unset MEDOPS_TOKEN" if found is not None and found.source == "env" else ""
        return Check("acting user", WARN, exc.message, fix or "run `medops login`")
    until = f"until {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "with no expiry"
    via = "logged in" if token.kind == "session" else f"API token {token.id} from {found.where}"
    roles = ", ".join(user.roles) or "no roles"
    return Check("acting user", OK, f"{user.username} ({roles}), {via} {until}")


def _artifact_check(settings: Settings) -> Check:
    """Writable, and kept: a root on fsspec's in-memory filesystem is gone when the process ends."""
    try:
        store = ArtifactStore(settings.artifact_root, cache=settings.artifact_cache or None)
        store.check_writable()
    except MedopsError as exc:
        return _error("artifact store", exc)
    except Exception as exc:  # an object store's client raises its own errors (credentials, network)
        reason = (exc.strerror if isinstance(exc, OSError) else None) or f"{type(exc).__name__}: {exc}"
        return Check(
            "artifact store",
            FAIL,
            f"{settings.artifact_root} is not writable: {reason}",
            "fix the folder's permissions or the store's credentials, or set artifact_root",
        )
    where = f"{settings.artifact_root} ({store.kind.description})"
    if not store.kind.persistent:
        return Check(
            "artifact store",
            WARN,
            f"{where}: writable, but every artifact is gone when the process ends",
            "for a lasting workspace set artifact_root to a folder or an object store URL",
        )
    cached = "" if store.local else f"; files for readers cached in {store.cache}"
    return Check("artifact store", OK, f"{where} is writable{cached}")


def _pseudonym_key_check(settings: Settings) -> Check:
    """Ingest needs the key for pseudonyms and date shifts; say early when it is missing."""
    try:
        load_key(key_file=settings.pseudonym_key_file)
    except MedopsError as exc:  # missing: only ingest needs it; readable by others or weak: a problem now
        return Check("pseudonym key", WARN if exc.code == MISSING else FAIL, exc.message, exc.hint or "")
    where = KEY_ENV if os.environ.get(KEY_ENV) else settings.pseudonym_key_file
    return Check("pseudonym key", OK, f"from {where}")


def private_paths(settings: Settings) -> list[Path]:
    """The files and folders only the workspace's owner may read, those that exist.

    The metadata database holds password hashes and the audit trail; the keys sign and
    pseudonymize; the cache and the online store hold copies of de-identified data.
    """
    paths: list[Path] = []
    url = make_url(settings.metadata_url) if settings.metadata_url.startswith("sqlite") else None
    if url is not None and url.database not in (None, "", ":memory:"):
        db = Path(url.database)
        paths += [db, db.with_name(f"{db.name}-wal"), db.with_name(f"{db.name}-shm")]
    paths += [Path(key) for key in (settings.signing_key_file, settings.pseudonym_key_file) if key]
    if settings.artifact_cache:
        paths.append(Path(settings.artifact_cache))
    if settings.online_store == "sqlite":
        online = settings.home / "online.db"
        paths += [online, online.with_name("online.db-wal"), online.with_name("online.db-shm")]
    unique = dict.fromkeys(p for p in paths if p.exists())
    return list(unique)


def _permissions_check(settings: Settings) -> Check:
    """Files made by an older medops, or copied with a loose umask, may be readable by every local user."""
    loose = [p for p in private_paths(settings) if exposed(p)]
    if not loose:
        return Check("file permissions", OK, "the database, keys and caches are readable by their owner only")
    files = [str(p) for p in loose if not p.is_dir()]
    folders = [str(p) for p in loose if p.is_dir()]
    fix = "; ".join(f"chmod {mode} {' '.join(names)}" for mode, names in (("600", files), ("700", folders)) if names)
    return Check("file permissions", FAIL, f"readable by other users: {', '.join(map(str, loose))}", f"run: {fix}")


def _server_checks(settings: Settings) -> list[Check]:
    """Each backend the settings name checks itself (a Redis ping, a Dask scheduler's port...)."""
    out = []
    for label, registry in (("online store", ONLINE_STORES), ("executor", EXECUTORS)):
        value = str(getattr(settings, registry.setting))
        backend = registry.find(value)
        try:
            out.append(Check(label, OK, backend.check(value) if backend.check else value))
        except MedopsError as exc:
            out.append(_error(label, exc))
    return out
