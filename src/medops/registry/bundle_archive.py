"""A bundle's tar, read as a stream within fixed limits: every header is checked before its member.

A bundle arrives from elsewhere, so its bytes are hostile until its manifest's signature
verifies. ``tarfile`` trusts what a header declares: a GNU sparse member of a few bytes
expands to the size its header claims, a pax or GNU long-name header is read whole whatever
size it states, and a gzip stream inflates before anything is looked at. This reader parses
the 512-byte tar headers itself and accepts only what medops writes: plain files
(ustar or pax), with a few pax fields, under plain names. Each header is checked before a
byte of its member is read or inflated:

- each member a regular file: a link, device, fifo, directory, GNU sparse (old or pax
  form), long-name or volume header is refused, as is any pax field beyond the harmless
  ones in ``PAX_FIELDS``;
- each under a name a bundle holds, once: so a bundle has at most as many members as there
  are such names (eight), and a tar of thousands is refused at its first unexpected or
  repeated name;
- ``manifest.json`` at most ``MAX_MANIFEST_BYTES``, every other member at most
  ``MAX_MEMBER_BYTES``, their sum at most ``MAX_BUNDLE_BYTES``; an extended header at most
  ``MAX_PAX_BYTES``;
- the stream as read (headers, data, padding; decompressed when gzip) and the file as
  stored (compressed or not) are each capped at ``MAX_BUNDLE_BYTES``: past it reading stops.

Nothing is extracted and nothing is decompressed ahead of the reader: a member is read only
when its caller asks (``bundles.read`` asks only once the manifest verified).
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from medops.errors import IntegrityError, InvalidInput

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1024**2  # names, checksums and sizes of a few files: a few KB in practice
MAX_MEMBER_BYTES = 2 * 1024**3  # the largest model file accepted
MAX_BUNDLE_BYTES = 4 * 1024**3  # the whole tar once decompressed, and the file as stored
MAX_PAX_BYTES = 64 * 1024  # an extended header medops would accept holds a few short fields
# Pax fields that change nothing about what a member holds; any other (GNU.sparse.*, SCHILY.*,
# linkpath...) is refused. ``path`` and ``size`` replace the ustar fields and are checked like them.
LIMITS = {
    "MAX_MANIFEST_BYTES": MAX_MANIFEST_BYTES,
    "MAX_MEMBER_BYTES": MAX_MEMBER_BYTES,
    "MAX_BUNDLE_BYTES": MAX_BUNDLE_BYTES,
    "MAX_PAX_BYTES": MAX_PAX_BYTES,
}
PAX_FIELDS = frozenset(
    {"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "charset", "hdrcharset", "comment"}
)

BLOCK = 512
CHUNK = 1024**2
GZIP_MAGIC = b"\x1f\x8b"
# Header type flags and what they are, for the refusal's message; only "0" (and the old "\0") is a plain file.
KINDS = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"5": "directory",
    b"6": "fifo",
    b"7": "contiguous file",
    b"S": "GNU sparse file",
    b"L": "GNU long-name header",
    b"K": "GNU long-link header",
    b"D": "GNU directory dump",
    b"M": "GNU multi-volume part",
    b"N": "GNU old long name",
    b"V": "volume label",
    b"g": "global extended header",
    b"X": "Solaris extended header",
}


class BundleError(IntegrityError):
    """A bundle that can't be trusted: the message says why; nothing from it was loaded.

    ``code`` says which check refused it (listed in medops.errors.CODES), so a caller can record
    the refusal; ``fields`` name the member and the limit when one was exceeded."""

    code = "bundle_refused"


@dataclass(frozen=True)
class Entry:
    """A member whose header passed every check; ``offset`` is where its bytes start in the tar."""

    name: str
    size: int
    offset: int


def too_large(what: str, size: int, limit: str, *, member: str = "") -> BundleError:
    """A refusal naming the limit (its constant's name too, for whoever reads the refusal)."""
    value = LIMITS[limit]
    return BundleError(
        f"{what} {size:,} bytes, over the limit of {value:,} ({limit}): refused before reading it",
        code="bundle_too_large",
        member=member,
        limit=limit,
    )


class _Counted:
    """The file as stored, read forward only, never past ``MAX_BUNDLE_BYTES``."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.read_bytes = handle, 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = CHUNK
        data = self.handle.read(min(n, MAX_BUNDLE_BYTES + 1 - self.read_bytes))
        self.read_bytes += len(data)
        if self.read_bytes > MAX_BUNDLE_BYTES:
            raise too_large("the bundle file holds more than", MAX_BUNDLE_BYTES, "MAX_BUNDLE_BYTES")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("a bundle is inflated forward only")  # gzip seeks only to rewind


class Tape:
    """The tar's bytes in order, inflated as they are asked for when the file is gzip, and counted."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        if size > MAX_BUNDLE_BYTES:
            raise too_large("the bundle file holds", size, "MAX_BUNDLE_BYTES")
        self.compressed = handle.read(2) == GZIP_MAGIC  # a bundle someone gzipped on the way still opens
        handle.seek(0)
        self._handle = handle
        self._size = size
        self._stream: IO[bytes] | gzip.GzipFile = handle  # its size is checked above; every read and seek below
        if self.compressed:  # the compressed bytes counted as they are read, the inflated ones by ``pos``
            self._stream = gzip.GzipFile(fileobj=_Counted(handle), mode="rb")
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > MAX_BUNDLE_BYTES:
            raise too_large("the bundle's tar runs past", self.pos + n, "MAX_BUNDLE_BYTES")
        try:
            if not self.compressed:
                data = self._stream.read(n)  # one allocation of the declared size, filled in place
            else:  # in slices: GzipFile would inflate a large read into a second buffer as large
                parts, left = [], n
                while left and (part := self._stream.read(min(left, CHUNK))):
                    parts.append(part)
                    left -= len(part)
                data = b"".join(parts)
        except (OSError, EOFError, zlib.error) as exc:
            raise BundleError(
                f"the bundle is damaged: its compression can't be read ({exc})", code="bundle_damaged"
            ) from None
        self.pos += len(data)
        return data

    def header(self) -> bytes | None:
        """The next 512-byte header, or None at the end of the file."""
        block = self._take(BLOCK)
        if not block:
            return None
        if len(block) < BLOCK:
            raise BundleError("the bundle is damaged: it ends inside a tar header", code="bundle_damaged")
        return block

    def read(self, n: int, member: str) -> bytes:
        """Exactly ``n`` bytes of ``member``; its header's size was checked against the limits already."""
        data = self._take(n)
        if len(data) < n:
            raise BundleError(f"the bundle is damaged: member {member!r} is cut short", code="bundle_damaged")
        return data

    def skip_to(self, pos: int, member: str) -> None:
        """Move on to ``pos``: a seek in a plain tar, inflated and dropped slice by slice in a gzip one."""
        if pos < self.pos:
            raise ValueError("the tape only moves forward")
        if not self.compressed:
            if pos > self._size:
                raise BundleError(f"the bundle is damaged: member {member!r} is cut short", code="bundle_damaged")
            if pos > MAX_BUNDLE_BYTES:
                raise too_large("the bundle's tar runs past", pos, "MAX_BUNDLE_BYTES")
            self._handle.seek(pos)
            self.pos = pos
            return
        while self.pos < pos:
            self.read(min(pos - self.pos, CHUNK), member)

    def read_at(self, offset: int, n: int, member: str) -> bytes:
        """A member's bytes from where its header said, in a plain tar (found again by seeking, never inflated)."""
        if self.compressed:
            raise ValueError("a compressed tar is read forward only")
        self._handle.seek(offset)
        self.pos = offset
        return self.read(n, member)


@contextmanager
def open_tape(source: bytes | str | os.PathLike[str]) -> Iterator[Tape]:
    """A tape over a bundle's bytes or over its file, read as a stream (never whole)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield Tape(io.BytesIO(source), len(source))
        return
    path = Path(source)
    try:
        handle = path.open("rb")
        size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise InvalidInput(f"{path}: can't be read ({exc.strerror})") from None
    with handle:
        yield Tape(handle, size)


def entries(tape: Tape, allowed: frozenset[str]) -> Iterator[Entry]:
    """Every member's header, checked; the caller reads the member's bytes or leaves them to be skipped.

    ``allowed`` is the member names a bundle may hold. A header is refused, before a byte of its
    member is read, when it is not a plain file with one of those names, appears twice, or
    declares more than the limits."""
    names: set[str] = set()
    declared = 0
    pax: dict[str, str] | None = None
    while (block := tape.header()) is not None and block != bytes(BLOCK):
        start = tape.pos - BLOCK
        name, kind, size, link = _parse(block, start)
        if kind == b"x":
            if pax is not None:
                raise BundleError(
                    f"the bundle is damaged: two extended headers in a row at byte {start:,}", code="bundle_damaged"
                )
            if size > MAX_PAX_BYTES:
                raise too_large("an extended header declares", size, "MAX_PAX_BYTES")
            pax = _pax_fields(tape.read(size, "extended header"), start)
            tape.skip_to(tape.pos + _padding(size), "extended header")
            continue
        if pax is not None:
            name = pax.get("path", name)
            if "size" in pax:
                size = _decimal(pax["size"], start)
        _check_member(name, kind, link, pax or {}, names, allowed)
        pax = None
        limit = "MAX_MANIFEST_BYTES" if name == MANIFEST else "MAX_MEMBER_BYTES"
        if size > LIMITS[limit]:
            raise too_large(f"member {name!r} declares", size, limit, member=name)
        declared += size
        if declared > MAX_BUNDLE_BYTES:
            raise too_large(f"with member {name!r} the members declare", declared, "MAX_BUNDLE_BYTES", member=name)
        names.add(name)
        entry = Entry(name, size, tape.pos)
        yield entry
        tape.skip_to(entry.offset + size + _padding(size), name)  # what the caller did not read, and the padding
    if pax is not None:
        raise BundleError("the bundle is damaged: it ends after an extended header", code="bundle_damaged")


def _check_member(
    name: str, kind: bytes, link: str, pax: dict[str, str], names: set[str], allowed: frozenset[str]
) -> None:
    shown = _shown(name)
    if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
        raise _refused(f"member {shown!r} has an absolute or escaping path", shown)
    if kind in (b"1", b"2") or "linkpath" in pax:
        raise _refused(f"member {shown!r} is a link (to {_shown(pax.get('linkpath', link))!r})", shown)
    if kind not in (b"0", b"\0"):
        what = KINDS.get(kind, f"member of type {kind!r}")
        raise _refused(f"member {shown!r} is a {what}, not a plain file", shown)
    sparse = sorted(k for k in pax if k.startswith(("GNU.sparse.", "SCHILY.sparse")) or k == "SCHILY.realsize")
    if sparse:
        raise _refused(f"member {shown!r} is a sparse file (extended header field {sparse[0]!r})", shown)
    unknown = sorted(set(pax) - PAX_FIELDS)
    if unknown:
        field = _shown(unknown[0])
        raise _refused(f"member {shown!r} has extended header field {field!r}, which medops does not accept", shown)
    if name not in allowed:
        raise _refused(f"member {shown!r} does not belong in a bundle", shown)
    if name in names:
        raise _refused(f"member {shown!r} appears twice", shown)


def _shown(text: str) -> str:
    """A name from the archive as a message shows it: the sender chose it, so at most 100 characters."""
    return text if len(text) <= 100 else text[:100] + "..."


def _refused(message: str, member: str) -> BundleError:
    return BundleError(
        f"{message}: refused before reading it, nothing extracted", code="bundle_member_refused", member=member
    )


def _parse(block: bytes, offset: int) -> tuple[str, bytes, int, str]:
    """Name, type flag, size and link target of a ustar (POSIX or GNU) header whose checksum holds."""
    where = "not a medops bundle (a tar of signed files)" if offset == 0 else "the bundle is damaged"
    try:
        stored = _octal(block[148:156])
    except ValueError:
        stored = -1
    unsigned = 256 + sum(block[:148]) + sum(block[156:])
    signed = 256 + sum(b - 256 if b > 127 else b for b in block[:148] + block[156:])
    magic = block[257:263]
    if stored not in (unsigned, signed) or magic not in (b"ustar\x00", b"ustar "):
        raise BundleError(f"{where}: no valid tar header at byte {offset:,}", code="bundle_damaged")
    try:
        name = _text(block[0:100])
        if magic == b"ustar\x00" and (prefix := _text(block[345:500])):  # POSIX only: GNU keeps times there
            name = f"{prefix}/{name}"
        link = _text(block[157:257])
        size = _number(block[124:136])
    except ValueError:
        raise BundleError(f"{where}: unreadable tar header at byte {offset:,}", code="bundle_damaged") from None
    return name, block[156:157], size, link


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8")  # strict: a name that is not text is refused


def _octal(field: bytes) -> int:
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _number(field: bytes) -> int:
    """A size field: octal digits, or GNU's base-256 for sizes octal can't hold (negative ones refused)."""
    if field[0] == 0x80:
        return int.from_bytes(field[1:], "big")
    if field[0] & 0x80:
        raise ValueError("negative size")
    return _octal(field)


def _decimal(value: str, offset: int) -> int:
    if not (value.isascii() and value.isdigit()):
        raise BundleError(f"the bundle is damaged: an extended header's size at byte {offset:,}", code="bundle_damaged")
    return int(value)


def _padding(size: int) -> int:
    return -size % BLOCK


def _pax_fields(data: bytes, offset: int) -> dict[str, str]:
    """The ``"<length> <key>=<value>\\n"`` records of a pax extended header."""
    fields: dict[str, str] = {}
    pos = 0
    try:
        while pos < len(data) and data[pos] != 0:
            space = data.index(b" ", pos)
            length = int(data[pos:space])
            record = data[pos : pos + length]
            if length <= space - pos or not record.endswith(b"\n"):
                raise ValueError("bad record")
            key, value = record[space - pos + 1 : -1].split(b"=", 1)
            fields[key.decode("utf-8")] = value.decode("utf-8")
            pos += length
    except ValueError:
        raise BundleError(
            f"the bundle is damaged: an extended header at byte {offset:,} can't be read", code="bundle_damaged"
        ) from None
    return fields
