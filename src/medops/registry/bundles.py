"""Model bundles: everything needed to predict anywhere, in one signed file.

A bundle is a tar of regular files only (uncompressed, so opening one is as fast as reading it):

    manifest.json        format, model, version, what it was built from, every file's SHA-256,
                         the signing key's id and public key, and the Ed25519 signature over the rest
    model.skops          (other models) the fitted pipeline (preprocessing and model) in skops
                         format: loading it builds only the trainers' safe types, it runs no pickle
    input_schema.json    the features in order, each one's type, training range or categories, required
    output_schema.json   the probability of the positive class, the classes, the decision threshold
    metadata.json        run, evaluation (and whether it passed), feature views, training set, author
    environment.lock     the exact installed distributions of the training
    inference.json       (models in their library's format) the preprocessing's fitted statistics
    model.txt            (LightGBM models) the booster in LightGBM's text format; the member a
                         trainer's native form names (``medops.training.estimators``)

The bytes are reproducible (sorted members, fixed times and owners). Reading one checks,
before any model is built: every member is a plain file with a plain relative name (no
absolute path, no "..", no link or device, nothing unexpected), nothing is extracted to disk,
the manifest's signature verifies with a trusted key, and every file's SHA-256 matches the
manifest. Only then is the model built: LightGBM's text parsed, or model.skops loaded, and only
if it holds nothing but scikit-learn's own types and the safe types the trainers declare.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.audit.chain import canonical_json
from medops.clock import to_iso, utc_now
from medops.errors import IntegrityError
from medops.public_keys import decode_public, encode_public, key_id
from medops.training.estimators import NativeModel, native_models, safe_types
from medops.training.input_schema import InputSchema
from medops.training.trainers import FittedModel

FORMAT = 1
FILES = ("input_schema.json", "output_schema.json", "metadata.json", "environment.lock")
INFERENCE = "inference.json"
SKOPS = "model.skops"
# The safe types (beyond what skops trusts by itself) are the model file's list, for runs and bundles
# alike: anything else in a bundle is refused, whoever signed it.
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_BUNDLE_BYTES = 4 * 1024**3


class BundleError(IntegrityError):
    """A bundle that can't be trusted: the message says why; nothing from it was loaded."""

    code = "bundle_refused"


@dataclass
class Bundle:
    """A bundle whose manifest signature verified; each file is checked against the manifest before use."""

    manifest: dict[str, Any]
    raw: dict[str, bytes]
    checked: set[str] = field(default_factory=set)

    def file(self, name: str) -> bytes:
        """A member's bytes, after its SHA-256 matched the signed manifest (once)."""
        if name not in self.checked:
            if hashlib.sha256(self.raw[name]).hexdigest() != self.manifest["files"][name]:
                raise BundleError(f"{name} does not match its checksum in the manifest: the file was changed")
            self.checked.add(name)
        return self.raw[name]

    @cached_property
    def metadata(self) -> dict[str, Any]:
        return dict(json.loads(self.file("metadata.json")))

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        return dict(json.loads(self.file("input_schema.json")))

    @cached_property
    def output_schema(self) -> dict[str, Any]:
        return dict(json.loads(self.file("output_schema.json")))


def input_schema_doc(schema: InputSchema, features: list[str], *, out_of_range: str = "reject") -> dict[str, Any]:
    """The input schema as a bundle states it: every feature in order, with what it accepts, and what
    happens to a row outside it (``reject``, or ``flag``: scored and flagged)."""
    out = []
    for name in features:
        entry: dict[str, Any] = {"name": name, "required": name in schema.required}
        if name in schema.numeric:
            entry.update(type="number", min=schema.numeric[name][0], max=schema.numeric[name][1])
        elif name in schema.categorical:
            entry.update(type="category", categories=schema.categorical[name])
        else:
            entry.update(type="any")
        out.append(entry)
    return {"features": out, "out_of_range": out_of_range}


def schema_from_doc(doc: dict[str, Any]) -> InputSchema:
    numeric = {f["name"]: (float(f["min"]), float(f["max"])) for f in doc["features"] if f["type"] == "number"}
    categorical = {f["name"]: list(f["categories"]) for f in doc["features"] if f["type"] == "category"}
    return InputSchema(numeric, categorical, [f["name"] for f in doc["features"] if f["required"]])


def build(
    private_key: Ed25519PrivateKey,
    *,
    model: bytes | None,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    metadata: dict[str, Any],
    environment: str,
    inference: dict[str, Any] | None = None,
    native: tuple[str, bytes] | None = None,
) -> bytes:
    """The bundle's bytes, signed with the workspace key; ``native`` is (member name, bytes) of a model
    in its library's format, which travels with ``inference`` instead of the skops ``model``."""
    files = {
        "input_schema.json": _json(input_schema),
        "output_schema.json": _json(output_schema),
        "metadata.json": _json(metadata),
        "environment.lock": environment.encode(),
    }
    if inference is not None and native is not None:
        files[INFERENCE] = _json(inference)
        files[native[0]] = native[1]
    elif model is not None:
        files[SKOPS] = model
    else:
        raise ValueError("a bundle needs the model: a skops pipeline, or its native form and the statistics")
    public = private_key.public_key()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "model": metadata.get("model"),
        "version": metadata.get("version"),
        "created_at": to_iso(utc_now()),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "key_id": key_id(public),
        "public_key": encode_public(public),
    }
    manifest["signature"] = base64.b64encode(private_key.sign(_signed_part(manifest))).decode("ascii")
    return _pack({"manifest.json": _json(manifest), **files})


def read(data: bytes, trusted: dict[str, str], *, check_all: bool = True) -> Bundle:
    """A verified bundle from its bytes; ``trusted`` maps key ids to public keys this workspace accepts.

    With ``check_all`` every file's checksum is checked now (import, export); without it each
    file is checked when first used (loading a model reads only what predicting needs).
    """
    files = _unpack(data)
    try:
        manifest = json.loads(files.pop("manifest.json"))
    except (KeyError, ValueError):
        raise BundleError("the bundle has no readable manifest.json") from None
    kid = manifest.get("key_id")
    if kid not in trusted or trusted[kid] != manifest.get("public_key"):
        raise BundleError(
            f"the bundle is signed with key {kid!r}, which this workspace does not trust",
            code="bundle_key_untrusted",
            hint="an admin can trust the exporting workspace's key",
        )
    try:
        signature = base64.b64decode(manifest.get("signature", ""), validate=True)
        decode_public(trusted[kid]).verify(signature, _signed_part(manifest))
    except (InvalidSignature, ValueError):
        raise BundleError("the manifest's signature does not verify: the manifest was changed after signing") from None
    listed = manifest.get("files", {})
    form = tuple(sorted(set(listed) - set(FILES)))
    if not set(FILES) <= set(listed) or form not in model_forms() or sorted(files) != sorted(listed):
        raise BundleError(f"the bundle holds {sorted(files)}, its manifest lists {sorted(listed)}")
    bundle = Bundle(manifest, files)
    for name in listed if check_all else ():
        bundle.file(name)
    return bundle


def model_forms() -> list[tuple[str, ...]]:
    """The model in one of its forms (member names, sorted). A model whose trainer declares a native
    form (LightGBM's text model) travels in it with the preprocessing's statistics as plain JSON:
    loading builds no Python object from the file and costs what the library's own loading costs.
    Any other model travels as its pipeline in skops format."""
    return [*(tuple(sorted((INFERENCE, n.file))) for n in native_models()), (SKOPS,)]


def native_model(bundle: Bundle) -> NativeModel | None:
    """The native form a verified bundle carries its model in, or None for a skops pipeline."""
    return next((n for n in native_models() if n.file in bundle.raw), None)


def pipeline_bytes(model: FittedModel) -> bytes:
    """The fitted pipeline in skops format, for a bundle."""
    import skops.io as sio

    return bytes(sio.dumps(model.pipeline))


def model_types(bundle: Bundle) -> list[str]:
    """The non-scikit-learn types model.skops would build; refused unless every one is a safe type."""
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(data=bundle.file(SKOPS)))
    except Exception as exc:  # noqa: BLE001 - any failure to parse is a refusal
        raise BundleError(f"model.skops can't be read: {type(exc).__name__}") from None
    unsafe = sorted(untrusted - safe_types())
    if unsafe:
        raise BundleError(f"model.skops holds types outside the safe list: {', '.join(unsafe[:5])}")
    return sorted(untrusted)


def load_fitted(bundle: Bundle) -> FittedModel:
    """The fitted pipeline; only ever called on a bundle ``read`` verified, and built only from safe types."""
    import skops.io as sio

    blob = bundle.file(SKOPS)
    try:  # skops builds only scikit-learn's types and the ones named here; anything else raises
        pipeline = sio.loads(blob, trusted=sorted(safe_types()))
    except sio.exceptions.UntrustedTypesFoundException:
        model_types(bundle)  # names the unsafe types
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild is a refusal
        raise BundleError(f"model.skops can't be read: {type(exc).__name__}") from None
    meta = bundle.metadata
    return FittedModel(pipeline, list(meta["features"]), list(meta["classes"]))


def _signed_part(manifest: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"}).encode()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, indent=1, default=str).encode()


def _pack(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(files[name]), 0, 0o644, 0, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return raw.getvalue()  # not compressed: opening the model must cost no more than reading it


def _gunzip(data: bytes) -> bytes:
    """Decompressed, up to a limit: a small file that expands without end is refused, not followed."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflate.decompress(data, MAX_BUNDLE_BYTES)
    if inflate.unconsumed_tail:
        raise BundleError(f"the bundle expands beyond {MAX_BUNDLE_BYTES:,} bytes: refused")
    return out


def _unpack(data: bytes) -> dict[str, bytes]:
    """The members' bytes, read in memory: never extracted, and refused unless plain files with plain names."""
    try:  # decompressed once in memory: tarfile over a gzip stream would decompress again on every seek
        plain = _gunzip(data) if data[:2] == b"\x1f\x8b" else data  # a bundle someone gzipped still opens
        if len(plain) > MAX_BUNDLE_BYTES:
            raise BundleError(f"the bundle is larger than {MAX_BUNDLE_BYTES:,} bytes: refused")
        tar = tarfile.open(fileobj=io.BytesIO(plain), mode="r:")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"not a medops bundle (a tar of signed files): {exc}") from None
    files: dict[str, bytes] = {}
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BundleError(f"the bundle is damaged: {exc}") from None
        for member in members:
            name = member.name
            if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
                raise BundleError(f"member {name!r} has an absolute or escaping path: refused, nothing extracted")
            if member.issym() or member.islnk():
                raise BundleError(f"member {name!r} is a link (to {member.linkname!r}): refused, nothing extracted")
            if not member.isfile():
                raise BundleError(f"member {name!r} is not a regular file: refused, nothing extracted")
            if name not in ("manifest.json", *FILES, *(n for form in model_forms() for n in form)):
                raise BundleError(f"member {name!r} does not belong in a bundle")
            if name in files:
                raise BundleError(f"member {name!r} appears twice")
            if member.size > MAX_MEMBER_BYTES:
                raise BundleError(f"member {name!r} is larger than {MAX_MEMBER_BYTES:,} bytes")
            handle = tar.extractfile(member)
            if handle is None:
                raise BundleError(f"member {name!r} can't be read")
            files[name] = handle.read()
    return files
