"""The checkpoint store: write-once documents in a folder or fsspec URL apart from the workspace.

It is configured separately from the database and the artifact store (``checkpoint_store``;
by default a folder beside the signing key), so someone who can rewrite the database, or
restore it with its artifact folder from an old copy, cannot reach the checkpoints that
expose it. Files are written once under validated names and never overwritten: on local
disk a hard link refuses an existing name atomically and the file is made read-only; on
an object store the name is checked first, and S3 Object Lock (see docs/architecture.md)
makes the objects undeletable for their retention period.

Every access goes through the few functions below, so further checks (state hashes, say)
can be wired in one place.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from medops import filesystems
from medops.audit.checkpoint import NAME, SUFFIX, Checkpoint
from medops.errors import ConfigError, Conflict, IntegrityError, InvalidInput, NotFound

TOKEN_SUFFIX = ".tsr"  # an RFC 3161 timestamp token of the checkpoint of the same name
MARKERS = "timestamped"  # one marker per timestamp interval that holds a token (rate limiting)
_DOC = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class CheckpointStore:
    def __init__(self, root: str) -> None:
        """Open the store at ``root``; nothing is created until the first write."""
        kind = filesystems.for_root(root)
        try:
            fs, path = fsspec.core.url_to_fs(root)
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"checkpoint_store {root!r} can't be used: {exc}", hint=kind.install_hint or "check the URL"
            ) from exc
        self.url = root
        self.fs = fs
        self.root = path.rstrip("/") or "/"
        self.local = kind.local and isinstance(fs, LocalFileSystem)
        self.persistent = kind.persistent

    def _path(self, name: str, folder: str = "") -> str:
        if not _DOC.match(name) or ".." in name:
            raise InvalidInput(f"{name!r} is not a valid checkpoint store name")
        return f"{self.root}/{folder}/{name}" if folder else f"{self.root}/{name}"

    def _ensure_root(self) -> None:
        if self.local:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        else:
            self.fs.makedirs(self.root, exist_ok=True)

    def write_once(self, name: str, data: bytes, folder: str = "") -> None:
        """Write a document under a name never used before; an existing name is refused."""
        final = self._path(name, folder)
        self._ensure_root()
        if self.local:
            _write_once_local(Path(final), data, Path(self.root))
            return
        if folder:
            self.fs.makedirs(f"{self.root}/{folder}", exist_ok=True)
        if self.fs.exists(final):
            raise Conflict(f"{name} exists already in the checkpoint store, which never overwrites")
        self.fs.pipe_file(final, data)

    def names(self, folder: str = "") -> list[str]:
        base = f"{self.root}/{folder}" if folder else self.root
        if self.local:
            try:
                return sorted(os.listdir(base))
            except FileNotFoundError:
                return []
        try:
            if not self.fs.exists(base):
                return []
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False))
        except FileNotFoundError:
            return []

    def read(self, name: str) -> bytes:
        path = self._path(name)
        try:
            with self.fs.open(path, "rb") as handle:
                return handle.read()  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise NotFound(f"no {name} in the checkpoint store") from exc

    def exists(self, name: str, folder: str = "") -> bool:
        return bool(self.fs.exists(self._path(name, folder)))


def _write_once_local(final: Path, data: bytes, root: Path) -> None:
    """Temp file in ``.tmp/``, fsync, then link(2) into place: atomic, and unlike rename it refuses
    an existing name. Nothing is ever removed from the store's own folder, so it works in a folder
    made append-only (``chattr +a``), where even its owner can't delete a checkpoint."""
    tmp_dir = root / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, final)
        except FileExistsError as exc:
            raise Conflict(f"{final.name} exists already in the checkpoint store, which never overwrites") from exc
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- the few operations medops performs on the store -------------------------------------


def publish_checkpoint(store: CheckpointStore, checkpoint: Checkpoint) -> None:
    store.write_once(checkpoint.name, checkpoint.render().encode("utf-8"))


def checkpoint_names(store: CheckpointStore) -> list[str]:
    """Every file that claims to be a checkpoint (its name ends so); malformed names included."""
    return [n for n in store.names() if n.endswith(SUFFIX)]


def read_checkpoint(store: CheckpointStore, name: str) -> Checkpoint:
    """Parse one checkpoint; IntegrityError when its name or content is malformed or they disagree."""
    checkpoint = Checkpoint.parse(store.read(name).decode("utf-8", errors="replace"))
    if not NAME.match(name) or checkpoint.name != name:
        raise IntegrityError(f"checkpoint file {name} does not hold the checkpoint its name says")
    return checkpoint


def publish_token(store: CheckpointStore, checkpoint_name: str, token: bytes) -> None:
    store.write_once(checkpoint_name + TOKEN_SUFFIX, token)


def read_token(store: CheckpointStore, checkpoint_name: str) -> bytes | None:
    try:
        return store.read(checkpoint_name + TOKEN_SUFFIX)
    except NotFound:
        return None


def token_names(store: CheckpointStore) -> set[str]:
    """Names of the checkpoints that have a timestamp token."""
    return {n.removesuffix(TOKEN_SUFFIX) for n in store.names() if n.endswith(SUFFIX + TOKEN_SUFFIX)}


def interval_marked(store: CheckpointStore, interval: int) -> bool:
    return store.exists(f"{interval:012d}", MARKERS)


def mark_interval(store: CheckpointStore, interval: int, checkpoint_name: str) -> None:
    try:
        store.write_once(f"{interval:012d}", checkpoint_name.encode("ascii"), MARKERS)
    except Conflict:
        pass  # another process stamped this interval too: one marker is enough
