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
import threading
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
        self._spare = SpareFile(Path(self.root) / ".tmp") if self.local else None

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
        if self._spare is not None:
            spare = self._spare.take()
            try:
                _write_once_local(Path(final), data, Path(self.root), spare)
            except FileNotFoundError:
                if spare is None:
                    raise
                _write_once_local(Path(final), data, Path(self.root))  # its folder was removed: a new file
            finally:
                self._spare.want()  # made after the write, not beside it: two syncs at once wait for each other
            return
        if folder:
            self.fs.makedirs(f"{self.root}/{folder}", exist_ok=True)
        if self.fs.exists(final):
            raise Conflict(f"{name} exists already in the checkpoint store, which never overwrites")
        self.fs.pipe_file(final, data)

    def close(self) -> None:
        """Remove the file made ahead for the next write, if any (the workspace closes its store)."""
        if self._spare is not None:
            self._spare.close()

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


def _write_once_local(final: Path, data: bytes, root: Path, spare: tuple[int, Path] | None = None) -> None:
    """Temp file in ``.tmp/`` (``spare``, one made ahead, when given), fsync, then link(2) into place:
    atomic, and unlike rename it refuses an existing name. Nothing is ever removed from the store's own
    folder, so it works in a folder made append-only (``chattr +a``), where even its owner can't delete
    a checkpoint."""
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = spare if spare is not None else _new_temp(root / ".tmp")
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


def _new_temp(folder: Path, prefix: str = "") -> tuple[int, Path]:
    """A new, empty, read-only file, open for writing (its mode binds only later opens)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = folder / f"{prefix}{uuid.uuid4().hex}.tmp"
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), tmp


class SpareFile:
    """The next checkpoint's temp file, made ahead by a thread of its own.

    Why: every change is answered once its checkpoint is on disk, and on the ext4 volumes of the
    machines in docs/benchmarks.md making a file costs 0.7 to 1 ms (waiting on the journal),
    against 0.2 ms to write and sync the checkpoint into it. Made while the server waits for the
    next request, the file is ready when the next change commits. It is made after a write, never
    during one: a file made while the checkpoint is synced only moves that wait into the sync
    (measured). A process's first write makes its own file; a spare left by a crash is an empty
    file in ``.tmp/``; the store's close removes an unused one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._ready: tuple[int, Path] | None = None
        self._wanted = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def take(self) -> tuple[int, Path] | None:
        """The file made ahead, if one is ready (this process's: a forked child makes its own)."""
        with self._lock:
            if self._pid != os.getpid():  # the parent's spare and thread stay the parent's
                if self._ready is not None:
                    os.close(self._ready[0])
                self._ready, self._thread, self._pid = None, None, os.getpid()
                self._wanted = threading.Event()
            spare, self._ready = self._ready, None
        return spare

    def want(self) -> None:
        """Make the next one now (after a write)."""
        with self._lock:
            if self._closed or self._pid != os.getpid():
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._make, name="medops-checkpoint-spare", daemon=True)
                self._thread.start()
        self._wanted.set()

    def _make(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                if self._closed:
                    return
                if self._ready is not None:
                    continue
            try:
                made = _new_temp(self.folder, "spare-")
            except OSError:  # a full disk, say: the next write makes its own file and says what failed
                continue
            with self._lock:
                if self._closed or self._ready is not None:
                    _discard(made)
                else:
                    self._ready = made

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spare, self._ready = self._ready, None
            thread = self._thread
        self._wanted.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if spare is not None:
            _discard(spare)


def _discard(spare: tuple[int, Path]) -> None:
    os.close(spare[0])
    spare[1].unlink(missing_ok=True)


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
