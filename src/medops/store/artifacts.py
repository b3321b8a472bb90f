"""Immutable, content-addressed artifact storage: an artifact is the SHA-256 of its bytes.

Layout under the root: ``sha256/ab/cd/<64 hex>``; writes go to ``.tmp/`` first and are
renamed into place only once complete and flushed, so a crash leaves no partial artifact
visible. Local roots use the OS directly (fsync, atomic rename); other fsspec URLs
(s3://, gs://, memory://) write a temporary object and move it into place.

Readers that need a real file (DuckDB, Arrow, LightGBM) call ``local_path``: on a local root
that is the stored file; on any other root it is a copy in a local cache, laid out the same
way, downloaded while hashed and hashed again before every use. Files built locally for the
store (``staging_path``) are uploaded by ``adopt`` and kept in the cache, so reading them back
needs no download. The cache holds copies of de-identified datasets and models, so its
folders are 0700 and its files 0400 (read-only, owner only), whatever the umask.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from medops import filesystems
from medops.atomic import fsync_dir
from medops.errors import ConfigError, Conflict, IntegrityError, InvalidInput, NotFound
from medops.private_files import make_private_dir

CHUNK = 4 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
TMP_DIR = ".tmp"


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    corrupt: list[str]
    stale_temp_files: int

    @property
    def ok(self) -> bool:
        return not self.corrupt


def check_digest(digest: str) -> str:
    """Digests come from users and records; only 64 lowercase hex characters are a key."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidInput(f"{digest!r} is not a SHA-256 digest (64 lowercase hex characters)")
    return digest


class ArtifactStore:
    def __init__(self, root: str, cache: str | os.PathLike[str] | None = None) -> None:
        """Open the store at ``root`` (a folder or an fsspec URL).

        ``cache`` is the local folder for copies of artifacts from a non-local root (default:
        a new private temp folder, made when first needed).
        """
        self.kind = filesystems.for_root(root)
        try:
            fs, path = fsspec.core.url_to_fs(root)
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"artifact_root {root!r} can't be used: {exc}",
                hint=self.kind.install_hint or "check the URL",
            ) from exc
        self.root_url = root
        self.fs = fs
        self.root = path.rstrip("/")
        self.local = self.kind.local and isinstance(fs, LocalFileSystem)
        self._cache = Path(cache) if cache is not None else None

    def _path(self, digest: str) -> str:
        d = check_digest(digest)
        return f"{self.root}/sha256/{d[:2]}/{d[2:4]}/{d}"

    def _tmp_path(self) -> str:
        return f"{self.root}/{TMP_DIR}/{uuid.uuid4().hex}"

    # --- writing -------------------------------------------------------------------

    def put(self, data: bytes | str | os.PathLike[str] | IO[bytes] | Iterable[bytes]) -> str:
        """Store bytes, a file path, a binary stream or an iterable of chunks; return the digest."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            held = bytes(data)
            digest = hashlib.sha256(held).hexdigest()
            if self.exists(digest):  # content-addressed: stored already (reads check the bytes), nothing to sync
                return digest
            return self._put_chunks([held])
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            if not path.is_file():
                raise NotFound(f"no file at {path}")
            if self.local:
                return self._put_local_file(path)
            with path.open("rb") as handle:
                return self._put_stream(handle)
        if hasattr(data, "read"):
            return self._put_stream(data)  # type: ignore[arg-type]
        return self._put_chunks(data)

    def _put_stream(self, stream: IO[bytes]) -> str:
        def chunks() -> Iterator[bytes]:
            while block := stream.read(CHUNK):
                yield block

        return self._put_chunks(chunks())

    def _put_chunks(self, chunks: Iterable[bytes]) -> str:
        if self.local:
            return self._put_local(chunks)
        with self._remote_tmp() as tmp:
            with self.fs.open(tmp, "wb") as out:
                digest = _write_hashing(chunks, out)
            self._place(tmp, digest)
        return digest

    @contextmanager
    def _remote_tmp(self) -> Iterator[str]:
        """A temp object under the root's temp folder, removed if the block fails."""
        tmp = self._tmp_path()
        self.fs.makedirs(f"{self.root}/{TMP_DIR}", exist_ok=True)
        try:
            yield tmp
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    def _place(self, tmp: str, digest: str) -> None:
        """Move a complete temp object into place (or drop it if the artifact is stored already)."""
        final = self._path(digest)
        if self.fs.exists(final):
            self.fs.rm(tmp)
        else:
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(tmp, final)

    def _put_local_file(self, source: Path) -> str:
        """Copy in the kernel, then hash the copy: the digest is of the bytes actually stored."""
        tmp = self._local_tmp()
        try:
            shutil.copyfile(source, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._adopt_local(tmp)

    def staging_path(self) -> Path:
        """A local file to build an artifact in (a Parquet writer, say); pass it to ``adopt``.

        On a local root it sits in the store's temp folder, so adopting it is a rename and
        a crash leaves only a temp file that ``clean_temp`` removes; on any other root it
        sits in the cache's temp folder, so the adopted file becomes the cached copy.
        """
        return self._local_tmp() if self.local else self._cache_tmp()

    def adopt(self, staged: Path) -> str:
        """Hash, flush and publish a complete file from ``staging_path``; the file is consumed."""
        if self.local:
            return self._adopt_local(staged)
        try:
            with open(staged, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            if not self.exists(digest):
                self._upload(staged, digest)
            self._publish_cached(staged, digest)
        finally:
            staged.unlink(missing_ok=True)
        return digest

    def _upload(self, source: Path, digest: str) -> None:
        """Put a local file under a temp name, then move it into place: never a partial artifact."""
        with self._remote_tmp() as tmp:
            self.fs.put_file(str(source), tmp)
            self._place(tmp, digest)

    def _adopt_local(self, tmp: Path) -> str:
        """Hash, flush and publish a complete file in the store's temp folder.

        The flush to disk runs in a second thread while the file is hashed (both release the
        GIL), so this costs about max(hash, fsync) rather than their sum.
        """
        try:
            with open(tmp, "rb") as handle, ThreadPoolExecutor(max_workers=1) as pool:
                synced = pool.submit(os.fsync, handle.fileno())
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
                synced.result()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._publish_local(tmp, digest)

    def local_path(self, digest: str) -> Path:
        """The verified file behind an artifact, for readers that need a path (DuckDB, Arrow).

        On a non-local root the file is the cache's copy: fetched when missing, and, like a
        local artifact, hashed before it is returned. Verification hashes the whole file, so
        readers call this once per use, not per row.
        """
        stored = self._require(digest)
        if self.local:
            path = Path(stored)
            with open(path, "rb") as handle:
                _check(digest, _hash_stream(handle))
            return path
        cached = self._cache_file(digest)
        if cached.exists():
            with open(cached, "rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() == digest:
                    return cached
            cached.unlink()  # a damaged copy: the store holds the artifact, fetch it again
        tmp = self._cache_tmp()
        try:
            with self.fs.open(stored, "rb") as source, open(tmp, "wb") as out:
                _check(digest, _write_hashing(iter(lambda: source.read(CHUNK), b""), out))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._publish_cached(tmp, digest)

    @property
    def cache(self) -> Path:
        """The local folder holding copies of a non-local root's artifacts."""
        if self._cache is None:
            self._cache = Path(tempfile.mkdtemp(prefix="medops-artifact-cache-"))
        return self._cache

    def _cache_file(self, digest: str) -> Path:
        return self.cache / "sha256" / digest[:2] / digest[2:4] / check_digest(digest)

    def _cache_tmp(self) -> Path:
        tmp_dir = self.cache / TMP_DIR
        make_private_dir(tmp_dir)
        return tmp_dir / uuid.uuid4().hex

    def _publish_cached(self, tmp: Path, digest: str) -> Path:
        """Rename a complete local file, known to hash to ``digest``, into the cache (read-only)."""
        final = self._cache_file(digest)
        make_private_dir(final.parent)
        os.chmod(tmp, 0o400)
        os.replace(tmp, final)
        return final

    def _local_tmp(self) -> Path:
        tmp_dir = Path(self.root) / TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir / uuid.uuid4().hex

    def _put_local(self, chunks: Iterable[bytes]) -> str:
        tmp = self._local_tmp()
        try:
            with open(tmp, "wb") as out:
                digest = _write_hashing(chunks, out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._publish_local(tmp, digest)

    def _publish_local(self, tmp: Path, digest: str) -> str:
        """Rename a complete, synced temp file into place (or drop it if stored already)."""
        try:
            final = Path(self._path(digest))
            if final.exists():
                tmp.unlink()
                return digest
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

    # --- reading -------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._path(digest)))

    def size(self, digest: str) -> int:
        self._require(digest)
        return int(self.fs.size(self._path(digest)))

    def _require(self, digest: str) -> str:
        path = self._path(digest)
        if not self.fs.exists(path):
            raise NotFound(f"artifact {digest} is not in the store at {self.root_url}")
        return path

    def open(self, digest: str) -> BinaryIO:
        """A reader over the artifact, opened only after its bytes hash to the digest."""
        handle = self.fs.open(self._require(digest), "rb")
        try:
            _check(digest, _hash_stream(handle))
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return handle  # type: ignore[no-any-return]

    def read_bytes(self, digest: str) -> bytes:
        with self.fs.open(self._require(digest), "rb") as handle:
            data = handle.read()
        _check(digest, hashlib.sha256(data).hexdigest())
        return data  # type: ignore[no-any-return]

    def verify(self, digest: str) -> bool:
        """True when the stored bytes still hash to their name."""
        with self.fs.open(self._require(digest), "rb") as handle:
            return _hash_stream(handle) == digest

    def digests(self) -> Iterator[str]:
        base = f"{self.root}/sha256"
        if not self.fs.exists(base):
            return
        for path in sorted(self.fs.find(base)):
            name = path.rsplit("/", 1)[-1]
            if _DIGEST.match(name):
                yield name

    def verify_all(self, clean_temp_older_than: float | None = None) -> VerifyReport:
        """Re-hash every artifact; optionally remove temp files left by crashed writers."""
        digests = list(self.digests())
        corrupt = [d for d in digests if not self.verify(d)]
        checked = len(digests)
        stale = self.clean_temp(clean_temp_older_than) if clean_temp_older_than is not None else 0
        return VerifyReport(checked=checked, corrupt=corrupt, stale_temp_files=stale)

    def clean_temp(self, older_than: float = 3600.0) -> int:
        """Remove temp files older than ``older_than`` seconds (never a live writer's).

        The cache's temp folder (staged files, downloads under way) is swept too.
        """
        tmp = f"{self.root}/{TMP_DIR}"
        removed = 0
        now = time.time()
        if self.fs.exists(tmp):
            for path in self.fs.find(tmp):
                modified = self.fs.modified(path).timestamp() if hasattr(self.fs, "modified") else 0.0
                if now - modified >= older_than:
                    self.fs.rm(path)
                    removed += 1
        if not self.local and self._cache is not None and (self._cache / TMP_DIR).is_dir():
            for file in (self._cache / TMP_DIR).iterdir():
                if file.is_file() and now - file.stat().st_mtime >= older_than:
                    file.unlink(missing_ok=True)
                    removed += 1
        return removed

    # --- named documents -------------------------------------------------------------
    # A few records must live outside the metadata database (the bundle keyring's versions): they
    # are written once under a validated name, never overwritten, never a client-given path.

    def _named_path(self, namespace: str, name: str) -> str:
        for part in (namespace, name):
            if not _NAME.match(part) or ".." in part:
                raise InvalidInput(f"{part!r} is not a valid document name")
        return f"{self.root}/{namespace}/{name}"

    def put_named(self, namespace: str, name: str, data: bytes) -> None:
        """Write a document once; a second write under the same name is refused."""
        final = self._named_path(namespace, name)
        if self.fs.exists(final):
            raise Conflict(f"{namespace}/{name} exists already and documents are never overwritten")
        tmp = self._tmp_path()
        self.fs.makedirs(f"{self.root}/{TMP_DIR}", exist_ok=True)
        self.fs.makedirs(f"{self.root}/{namespace}", exist_ok=True)
        if self.local:
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
            return
        with self.fs.open(tmp, "wb") as out:
            out.write(data)
        self.fs.mv(tmp, final)

    def list_named(self, namespace: str) -> list[str]:
        base = self._named_path(namespace, "x").rsplit("/", 1)[0]
        if not self.fs.exists(base):
            return []
        return sorted(p.rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False))

    def read_named(self, namespace: str, name: str) -> bytes:
        path = self._named_path(namespace, name)
        if not self.fs.exists(path):
            raise NotFound(f"no document {namespace}/{name}")
        with self.fs.open(path, "rb") as handle:
            return handle.read()  # type: ignore[no-any-return]

    def check_writable(self) -> None:
        """Write, read back and remove a probe artifact under the temp folder."""
        probe = self._tmp_path()
        self.fs.makedirs(f"{self.root}/{TMP_DIR}", exist_ok=True)
        with self.fs.open(probe, "wb") as out:
            out.write(b"medops probe")
        self.fs.rm(probe)


def _write_hashing(chunks: Iterable[bytes], out: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    for block in chunks:
        hasher.update(block)
        out.write(block)
    return hasher.hexdigest()


def _hash_stream(handle: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    if isinstance(handle, io.BufferedReader):
        return hashlib.file_digest(handle, "sha256").hexdigest()
    while block := handle.read(CHUNK):
        hasher.update(block)
    return hasher.hexdigest()


def _check(expected: str, actual: str) -> None:
    if actual != expected:
        raise IntegrityError(
            f"artifact {expected} is corrupt: its bytes hash to {actual}",
            hint="restore it from a backup; it was changed after it was stored",
        )
