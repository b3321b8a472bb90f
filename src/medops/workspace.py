"""The composition root: a workspace opened from its folder (or created), wired into a Platform."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

from medops.atomic import write_atomic
from medops.config import (
    CONFIG_FILE,
    DEFAULT_ARTIFACT_CACHE,
    DEFAULT_ARTIFACT_DIR,
    DEFAULT_DB_FILE,
    Settings,
    default_checkpoint_store,
    default_key_dir,
    load_settings,
    render_config,
    resolve_local,
    validate,
)
from medops.errors import Conflict
from medops.identity import pseudonym_key
from medops.identity.keys import ENV_KEY, create_key_file, load_private_key
from medops.identity.users import BOOTSTRAP_ACTOR
from medops.platform import Platform
from medops.public_keys import encode_public
from medops.store import migrate
from medops.store.artifacts import ArtifactStore
from medops.store.database import Database


class Workspace(Platform):
    """The composition root: a Platform opened from a workspace folder's medops.toml."""

    @classmethod
    def open(cls, home: Path | None = None, *, check_schema: bool = True) -> Workspace:
        """Open the workspace at ``home`` (else MEDOPS_HOME, else found upward from here)."""
        return cls.from_settings(load_settings(home), check_schema=check_schema)


def init_workspace(
    directory: Path,
    *,
    admin_username: str,
    admin_full_name: str,
    admin_password: str,
    metadata_url: str | None = None,
    artifact_root: str | None = None,
    key_dir: Path | None = None,
    project_file: str | None = None,
) -> Workspace:
    """Create a workspace: schema, artifact folder, signing key, first admin, medops.toml.

    ``project_file`` is the reviewed project file whose validation policy gates production
    (default: medops.yaml in the workspace folder).

    medops.toml is written last, so a failed init leaves no half-made workspace behind;
    files it created before failing are removed.
    """
    home = directory.expanduser().resolve()
    if (home / CONFIG_FILE).exists():
        raise Conflict(f"{home} is a medops workspace already", code="workspace_exists")
    workspace_id = uuid.uuid4().hex
    key_file = (key_dir or default_key_dir()) / f"{workspace_id}.ed25519"
    pseudonym_file = key_file.with_suffix(".pseudonym")
    values: dict[str, object] = {
        "workspace_id": workspace_id,
        "metadata_url": metadata_url or f"sqlite:///{DEFAULT_DB_FILE}",
        "artifact_root": artifact_root or DEFAULT_ARTIFACT_DIR,
        "default_user": admin_username,
        **({"signing_key_file": str(key_file)} if key_dir else {}),
        **({"pseudonym_key_file": str(pseudonym_file)} if key_dir else {}),
        "online_store": "sqlite",
        "executor": "local",
        **({"project_file": project_file} if project_file else {}),
    }
    settings = Settings(
        home=home,
        workspace_id=workspace_id,
        metadata_url=metadata_url or f"sqlite:///{home / DEFAULT_DB_FILE}",
        artifact_root=resolve_local(home, artifact_root or DEFAULT_ARTIFACT_DIR),
        default_user=admin_username,
        signing_key_file=str(key_file),
        pseudonym_key_file=str(pseudonym_file),
        project_file=project_file or "medops.yaml",
        artifact_cache=str(home / DEFAULT_ARTIFACT_CACHE),
        checkpoint_store=default_checkpoint_store(str(key_file)),
    )
    validate(settings)  # before anything is created
    created: list[Path] = []
    if not home.exists():
        home.mkdir(parents=True)
        created.append(home)
    try:
        if metadata_url is None:
            created += [home / DEFAULT_DB_FILE, home / f"{DEFAULT_DB_FILE}-wal", home / f"{DEFAULT_DB_FILE}-shm"]
        db = Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout)
        try:
            db.ping()
            migrate.upgrade(db)
        finally:
            db.dispose()
        if artifact_root is None:
            created.append(home / DEFAULT_ARTIFACT_DIR)
        ArtifactStore(settings.artifact_root).check_writable()
        if not os.environ.get(ENV_KEY):
            create_key_file(key_file)
            created.append(key_file)
        # Pinned in medops.toml, outside the database: the only key this workspace's signatures verify with.
        values["signing_public_key"] = encode_public(load_private_key(settings).public_key())
        settings = replace(settings, signing_public_key=str(values["signing_public_key"]))
        if not os.environ.get(pseudonym_key.KEY_ENV):
            if pseudonym_key.create_key_file(pseudonym_file):
                created.append(pseudonym_file)
        checkpoints = Path(settings.checkpoint_root)
        if "://" not in settings.checkpoint_root and not checkpoints.exists():
            created.append(checkpoints)  # made by the first change's checkpoint, below
        ws = Workspace.from_settings(settings)
        ws.users.bootstrap_admin(admin_username, admin_full_name, admin_password)
        ws.signatures.register_key(BOOTSTRAP_ACTOR)
        write_atomic(home / CONFIG_FILE, render_config(values))
    except BaseException:
        for path in reversed(created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    return ws
