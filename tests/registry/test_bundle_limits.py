"""Bounded bundle reading: a hostile archive is refused from its headers, before its members are read
or inflated, and refusing it costs little memory. Each bomb is refused in a separate process that
reports how far its peak memory grew."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from medops.audit.chain import canonical_json
from medops.public_keys import encode_public, key_id
from medops.registry import bundle_archive, bundles, transfer
from medops.registry.bundle_archive import MAX_BUNDLE_BYTES, MAX_MEMBER_BYTES
from medops.registry.bundles import BundleError
from medops.store.schema import ModelVersion
from medops.workspace import Workspace, init_workspace
from tests.factories import PASSWORD

MiB = 1024**2
GiB = 1024**3
RSS_LIMIT_MB = 200
NAMES = [
    "environment.lock",
    "inference.json",
    "input_schema.json",
    "manifest.json",
    "metadata.json",
    "model.skops",
    "model.txt",
    "output_schema.json",
]


# ------------------------------------------------------------------------------------ archive makers


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE, *, gnu: bool = False, **patch: bytes) -> bytes:
    """A tar header as a hostile tool would write it: any type, any declared size, fields patched
    at their byte offsets (``at_386=...``), and a checksum that holds."""
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT if gnu else tarfile.USTAR_FORMAT))
    for at, value in patch.items():
        offset = int(at.removeprefix("at_"))
        block[offset : offset + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _tar(*members: tuple[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _deflated(data: bytes, *, final: bool = False) -> bytes:
    """Raw deflate blocks that end byte-aligned and start from an empty history: any sequence of
    them, the last one final, is one valid deflate stream."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def _gzip(*parts: bytes | int) -> bytes:
    """One gzip stream of ``parts``, an int standing for that many zero bytes: a bomb of a few
    hundred bytes per MiB it inflates to, built without ever holding the zeros."""
    zeros = bytes(MiB)
    block = _deflated(zeros)
    out, crc, size = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"], 0, 0
    for part in parts:
        if isinstance(part, int):
            whole, rest = divmod(part, MiB)
            out.append(block * whole)
            for _ in range(whole):
                crc = zlib.crc32(zeros, crc)
            size += whole * MiB
            part = bytes(rest)
        out.append(_deflated(part))
        crc, size = zlib.crc32(part, crc), size + len(part)
    out += [_deflated(b"", final=True), struct.pack("<II", crc, size & 0xFFFFFFFF)]
    return b"".join(out)


END = bytes(1024)  # the two empty blocks that end a tar


def _member(name: str, data: bytes) -> bytes:
    return _header(name, len(data)) + data + bytes(-len(data) % 512)


def _sparse_bomb() -> bytes:
    """Eight GNU sparse members, each all hole, each expanding to nearly 2 GiB: 5 KB on disk, 16 GiB
    for a reader that believes the headers (the issue's attack)."""
    real = b"%011o\0" % (MAX_MEMBER_BYTES - 512)
    return b"".join(_header(n, 0, tarfile.GNUTYPE_SPARSE, gnu=True, at_483=real) for n in NAMES) + END


def _pax_sparse_bomb() -> bytes:
    """The same in the pax form GNU tar writes (sparse format 1.0): a regular member whose extended
    header names its real size."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in NAMES:
            sparse_map = b"1\n0\n0\n".ljust(512, b"\0")  # one data region of 0 bytes at 0: all hole
            info = tarfile.TarInfo(name)
            info.size = len(sparse_map)
            info.pax_headers = {
                "GNU.sparse.major": "1",
                "GNU.sparse.minor": "0",
                "GNU.sparse.name": name,
                "GNU.sparse.realsize": str(MAX_MEMBER_BYTES - 512),
            }
            tar.addfile(info, io.BytesIO(sparse_map))
    return raw.getvalue()


def _pax_tar(name: str, fields: dict[str, str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.pax_headers = 1, fields
        tar.addfile(info, io.BytesIO(b"x"))
    return raw.getvalue()


def _keyed() -> tuple[Ed25519PrivateKey, dict[str, str]]:
    key = Ed25519PrivateKey.generate()
    return key, {key_id(key.public_key()): encode_public(key.public_key())}


def _bundle(key: Ed25519PrivateKey, model: bytes = b"a model's bytes") -> bytes:
    return bundles.build(
        key,
        model=model,
        input_schema={"features": [], "out_of_range": "reject"},
        output_schema={"threshold": 0.5},
        metadata={"model": "sepsis", "version": 1},
        environment="numpy==2.0\n",
    )


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def _older_bundle(key: Ed25519PrivateKey, model: bytes = b"a model's bytes") -> bytes:
    """A bundle as medops wrote them before sizes were recorded: no sizes, members sorted (manifest among them)."""
    files = dict(_members(_bundle(key, model)))
    manifest = json.loads(files.pop("manifest.json"))
    del manifest["sizes"], manifest["signature"]
    manifest["signature"] = base64.b64encode(key.sign(canonical_json(manifest).encode())).decode()
    files["manifest.json"] = json.dumps(manifest).encode()
    return _tar(*sorted(files.items()))


# ------------------------------------------------------------------------------------ reading


def test_a_bundle_carries_its_manifest_first_with_every_members_size() -> None:
    key, trusted = _keyed()
    data = _bundle(key)
    members = _members(data)
    assert members[0][0] == "manifest.json"
    manifest = json.loads(members[0][1])
    assert manifest["sizes"] == {name: len(body) for name, body in members[1:]}
    assert bundles.read(data, trusted).file("model.skops") == b"a model's bytes"


def test_older_bundles_still_read_and_a_gzipped_one_when_its_manifest_comes_first(tmp_path: Path) -> None:
    key, trusted = _keyed()
    older = _older_bundle(key)
    assert [n for n, _ in _members(older)].index("manifest.json") == 2  # after environment.lock and input_schema.json
    path = tmp_path / "older.medops"
    path.write_bytes(older)
    for source in (older, path, str(path)):  # bytes, or a file read as a stream (sought back, nothing inflated)
        assert "sizes" not in bundles.read(source, trusted).manifest
    assert bundles.read(gzip.compress(_bundle(key)), trusted).metadata["model"] == "sepsis"
    with pytest.raises(BundleError, match="'environment.lock' comes before manifest.json in a compressed") as info:
        bundles.read(gzip.compress(older), trusted)  # reaching its manifest would mean inflating unverified members
    assert info.value.code == "bundle_member_refused" and "gunzip" in (info.value.hint or "")


def _refusals() -> dict[str, tuple[bytes, str, str]]:
    """Archives refused from their headers alone: (bytes, code, message)."""
    key, _ = _keyed()
    good = dict(_members(_bundle(key)))
    huge = _header("model.skops", 3 * GiB)
    packed = gzip.compress(_tar(*good.items()))
    kinds = {
        "a hard link": (tarfile.LNKTYPE, "is a link"),
        "a symbolic link": (tarfile.SYMTYPE, "is a link"),
        "a character device": (tarfile.CHRTYPE, "is a character device"),
        "a block device": (tarfile.BLKTYPE, "is a block device"),
        "a fifo": (tarfile.FIFOTYPE, "is a fifo"),
        "a directory with content": (tarfile.DIRTYPE, "is a directory"),
        "a GNU long name": (tarfile.GNUTYPE_LONGNAME, "is a GNU long-name header"),
        "a global header": (tarfile.XGLTYPE, "is a global extended header"),
        "a contiguous file": (tarfile.CONTTYPE, "is a contiguous file"),
    }
    cases: dict[str, tuple[bytes, str, str]] = {
        "GNU sparse members": (_sparse_bomb(), "bundle_member_refused", "'environment.lock' is a GNU sparse file"),
        "pax sparse members": (_pax_sparse_bomb(), "bundle_member_refused", "is a sparse file .*GNU.sparse"),
        "thousands of members": (
            b"".join(_header("model.skops", 0) for _ in range(5000)) + END,
            "bundle_member_refused",
            "'model.skops' appears twice",
        ),
        "a member over the limit": (
            huge + END,
            "bundle_too_large",
            r"'model.skops' declares 3,221,225,472 bytes, over the limit of 2,147,483,648 \(MAX_MEMBER_BYTES\)",
        ),
        "a manifest over its limit": (
            _header("manifest.json", 2 * MiB) + END,
            "bundle_too_large",
            r"MAX_MANIFEST_BYTES",
        ),
        "an extended header over its limit": (
            _header("././@PaxHeader", GiB, tarfile.XHDTYPE) + END,
            "bundle_too_large",
            r"an extended header declares 1,073,741,824 bytes.*MAX_PAX_BYTES",
        ),
        "a base-256 size": (
            _header("model.skops", 0, at_124=b"\x80" + (5 * GiB).to_bytes(11, "big")) + END,
            "bundle_too_large",
            "declares 5,368,709,120 bytes",
        ),
        "a member no bundle holds": (_tar(("notes.txt", b"x")), "bundle_member_refused", "does not belong"),
        "a member twice": (
            _tar(("model.skops", b"one"), ("model.skops", b"two"), *good.items()),
            "bundle_member_refused",
            "appears twice",
        ),
        "a broken header": (b"\x00" * 100 + b"junk" * 200, "bundle_damaged", "not a medops bundle"),
        "a broken gzip": (
            packed[:12] + bytes(b ^ 0xFF for b in packed[12:60]) + packed[60:],
            "bundle_damaged",
            "damaged",
        ),
        "a cut member": (_tar(*good.items())[:1200], "bundle_damaged", "cut short"),
    }
    cases["an unknown pax field"] = (
        _pax_tar("model.skops", {"SCHILY.xattr.user.run": "x"}),
        "bundle_member_refused",
        "extended header field 'SCHILY.xattr.user.run'",
    )
    cases["a pax path that escapes"] = (
        _pax_tar("model.skops", {"path": "../" * 30 + "etc/cron.d/x"}),
        "bundle_member_refused",
        r"absolute or escaping path",
    )
    cases["a pax link target"] = (_pax_tar("model.skops", {"linkpath": "/etc/shadow"}), "bundle_member_refused", "link")
    for what, (kind, message) in kinds.items():
        cases[what] = (_header("model.skops", 4, kind) + b"x".ljust(512, b"\0") + END, "bundle_member_refused", message)
    return cases


@pytest.mark.parametrize("what", sorted(_refusals()))
def test_hostile_headers_are_refused_before_any_member_is_read(what: str, tmp_path: Path) -> None:
    data, code, message = _refusals()[what]
    _, trusted = _keyed()
    path = tmp_path / "hostile.medops"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(BundleError, match=message) as info:
            bundles.read(source, trusted)
        assert info.value.code == code, what


def test_a_member_unlike_its_signed_manifest_is_refused_before_it_is_read() -> None:
    key, trusted = _keyed()
    members = _members(_bundle(key))
    grown = [(n, b * 3 if n == "model.skops" else b) for n, b in members]
    extra = [*members[:1], ("model.txt", b"a tree"), *members[1:]]
    with pytest.raises(BundleError, match=r"'model.skops' declares 45 bytes, the signed manifest 15") as info:
        bundles.read(_tar(*grown), trusted)
    assert info.value.code == "bundle_mismatch" and info.value.fields["member"] == "model.skops"
    with pytest.raises(BundleError, match="'model.txt' is not listed in the signed manifest"):
        bundles.read(_tar(*extra), trusted)
    stranger, _ = _keyed()
    with pytest.raises(BundleError, match="does not trust") as info:
        bundles.read(_bundle(stranger), trusted)
    assert info.value.code == "bundle_key_untrusted"


def test_the_members_sizes_together_are_capped_before_the_one_that_crosses_the_cap_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An older bundle (no sizes in its manifest) signed by a trusted key is held to the limits alone:
    the member whose declared size takes the total past the cap is refused from its header. The
    cap is lowered here so the test needs no gigabytes."""
    key, trusted = _keyed()
    older = dict(_members(_older_bundle(key, model=bytes(64 * 1024))))
    compressed = gzip.compress(_tar(("manifest.json", older.pop("manifest.json")), *older.items()))
    monkeypatch.setattr(bundle_archive, "MAX_BUNDLE_BYTES", 32 * 1024)
    monkeypatch.setitem(bundle_archive.LIMITS, "MAX_BUNDLE_BYTES", 32 * 1024)
    with pytest.raises(
        BundleError, match=r"with member 'model.skops' the members declare .*\(MAX_BUNDLE_BYTES\)"
    ) as info:
        bundles.read(compressed, trusted)
    assert info.value.code == "bundle_too_large" and info.value.fields["limit"] == "MAX_BUNDLE_BYTES"
    monkeypatch.setattr(bundle_archive, "MAX_BUNDLE_BYTES", 256 * 1024)
    monkeypatch.setitem(bundle_archive.LIMITS, "MAX_BUNDLE_BYTES", 256 * 1024)
    assert len(bundles.read(compressed, trusted).file("model.skops")) == 64 * 1024


# ------------------------------------------------------------------------------------ importing


def _workspace(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws", admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD)


def _stored(ws: Workspace) -> tuple[int, list[Path]]:
    """Versions registered, and every file in the artifact store (stored or in its temp folder)."""
    with ws.db.read() as session:
        count = session.execute(select(func.count()).select_from(ModelVersion)).scalar_one()
    root = Path(ws.artifacts.root)
    return count, sorted(p for p in root.rglob("*") if p.is_file())


def test_a_file_over_the_cap_is_refused_before_a_byte_is_copied(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    with ws:
        before = _stored(ws)
        path = tmp_path / "huge.medops"
        with path.open("wb") as out:
            out.truncate(MAX_BUNDLE_BYTES + 1)  # a sparse file: 4 GiB that take no disk
        with pytest.raises(BundleError, match=r"the bundle file holds 4,294,967,297 bytes.*MAX_BUNDLE_BYTES"):
            transfer.import_bundle(ws, path, actor="admin")
        with pytest.raises(BundleError, match="MAX_BUNDLE_BYTES"):
            bundles.read(path, transfer.trusted_keys(ws))
        assert _stored(ws) == before


# The import as a separate process runs it, reporting each refusal and how far its peak memory
# (ru_maxrss) grew past what opening the workspace and one warm-up refusal cost. Its address
# space is capped as well, so a reader that did believe the headers fails with MemoryError
# instead of taking the machine's memory.
PROBE = r"""
import json, resource, sys
from pathlib import Path

from medops.registry import transfer
from medops.registry.bundles import BundleError
from medops.registry.predictor import load_bundle_file
from medops.workspace import Workspace

home, public, warmup, *files = sys.argv[1:]
ws = Workspace.open(Path(home))

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def attempt(call):
    try:
        call()
        return {"code": None}
    except BundleError as exc:
        return {"code": exc.code, "message": exc.message}
    except MemoryError:
        return {"code": "MemoryError"}

for how in (lambda: transfer.import_bundle(ws, Path(warmup), actor="admin"), lambda: load_bundle_file(warmup, public)):
    attempt(how)
vm_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize:")).split()[1])
resource.setrlimit(resource.RLIMIT_AS, ((vm_kb + 1536 * 1024) * 1024, resource.RLIM_INFINITY))
baseline = peak_mb()
report = []
for file in files:
    for how, call in (
        ("import", lambda: transfer.import_bundle(ws, Path(file), actor="admin")),
        ("load", lambda: load_bundle_file(file, public)),
    ):
        outcome = attempt(call)
        report.append({"file": Path(file).name, "how": how, "growth_mb": peak_mb() - baseline, **outcome})
print(json.dumps(report))
"""


def _bombs(ws: Workspace) -> dict[str, tuple[bytes, str, str]]:
    """The issue's attacks at full size, each (bytes, code, message)."""
    signed = _bundle(ws.signing_key())  # this workspace's own key: a manifest that verifies
    manifest = dict(_members(signed))["manifest.json"]
    stranger = dict(_members(_bundle(Ed25519PrivateKey.generate())))["manifest.json"]
    bomb = _header("model.skops", GiB)  # followed by 1 GiB of zeros, then the end blocks
    return {
        "gnu-sparse": (_sparse_bomb(), "bundle_member_refused", "is a GNU sparse file"),
        "pax-sparse": (_pax_sparse_bomb(), "bundle_member_refused", "is a sparse file"),
        "gzip-bomb": (_gzip(bomb, GiB, END), "bundle_member_refused", "comes before manifest.json in a compressed"),
        "gzip-bomb-untrusted-manifest": (
            _gzip(_member("manifest.json", stranger) + bomb, GiB, END),
            "bundle_key_untrusted",
            "does not trust",
        ),
        "gzip-bomb-trusted-manifest": (
            _gzip(_member("manifest.json", manifest) + bomb, GiB, END),
            "bundle_mismatch",
            "'model.skops' declares 1,073,741,824 bytes, the signed manifest",
        ),
        "gzip-pax-bomb": (
            _gzip(_header("././@PaxHeader", GiB, tarfile.XHDTYPE), GiB, END),
            "bundle_too_large",
            "MAX_PAX_BYTES",
        ),
        "many-members": (
            b"".join(_header(f"m{i}.json", 0) for i in range(5000)) + END,
            "bundle_member_refused",
            "'m0.json' does not belong in a bundle",
        ),
        "over-the-cap": (_header("model.skops", 3 * GiB) + END, "bundle_too_large", "MAX_MEMBER_BYTES"),
        "symlink": (_header("model.skops", 0, tarfile.SYMTYPE) + END, "bundle_member_refused", "is a link"),
        "device": (_header("model.skops", 0, tarfile.CHRTYPE) + END, "bundle_member_refused", "character device"),
    }


@pytest.mark.skipif(sys.platform != "linux", reason="reads its address space from /proc and caps it (Linux only)")
def test_bombs_are_refused_in_little_memory_and_register_nothing(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    with ws:
        bombs = _bombs(ws)
        for name, (data, _, _) in bombs.items():
            (tmp_path / f"{name}.medops").write_bytes(data)
        assert max(len(data) for data, _, _ in bombs.values()) < 4 * MiB  # small files, huge claims
        warmup = tmp_path / "warmup.medops"
        warmup.write_bytes(b"not a bundle")
        before = _stored(ws)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(ws.settings.home), transfer.public_key(ws), str(warmup)]
            + [str(tmp_path / f"{name}.medops") for name in bombs],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr[-3000:]
        report: list[dict[str, Any]] = json.loads(probe.stdout.strip().splitlines()[-1])
        assert len(report) == 2 * len(bombs)
        for row in report:
            _, code, message = bombs[row["file"].removesuffix(".medops")]
            assert row["code"] == code and re.search(message, row["message"]), row
            assert row["growth_mb"] < RSS_LIMIT_MB, row
        assert _stored(ws) == before  # nothing registered, nothing stored, no staged copy left behind


def test_the_bomb_maker_makes_what_it_says() -> None:
    """The gzip stream the bombs are made with inflates to exactly its parts."""
    data = _gzip(b"head", 3 * MiB + 7, b"tail")
    plain = gzip.decompress(data)
    assert plain == b"head" + bytes(3 * MiB + 7) + b"tail" and len(data) < 8 * 1024
    with tarfile.open(fileobj=io.BytesIO(_sparse_bomb())) as tar:  # what tarfile believes: 16 GiB
        assert sum(m.size for m in tar.getmembers()) == len(NAMES) * (MAX_MEMBER_BYTES - 512)
