"""Model bundles: everything needed to predict anywhere, in one signed file.

A bundle is a tar of regular files only (uncompressed, so opening one is as fast as reading it),
the manifest first:

    manifest.json        format, model, version, what it was built from, every file's SHA-256 and
                         size, the signing key's id and public key, and the Ed25519 signature over the rest
    model.skops          (other models) the fitted pipeline (preprocessing and model) in skops
                         format: loading it builds only the trainers' safe types, it runs no pickle
    input_schema.json    the features in order, each one's type, training range or categories, required
    output_schema.json   the probability of the positive class, the classes, the decision threshold
    metadata.json        run, evaluation (and whether it passed), feature views, training set, author
    environment.lock     the exact installed distributions of the training
    inference.json       (models in their library's format) the preprocessing's fitted statistics
    model.txt            (LightGBM models) the booster in LightGBM's text format; the member a
                         trainer's native form names (``medops.training.estimators``)

The bytes are reproducible (manifest first, then sorted members, fixed times and owners).
Reading one is bounded (``bundle_archive``): from a file it streams, and every tar header is
checked before a byte of its member is read or inflated (a plain file with a plain relative
name, one a bundle holds and only once, within ``MAX_MANIFEST_BYTES``, ``MAX_MEMBER_BYTES`` and
``MAX_BUNDLE_BYTES``: no link, device, sparse file or other special member); nothing is
extracted to disk. The manifest is read first and its signature verified with a trusted key
before any other member is read: each member must then be listed in it, with the size it
records (bundles made before sizes were recorded are held to the limits alone). A gzipped
bundle is read forward only, so its manifest must come first, as medops writes it; a plain
tar made by an older medops (its manifest among the sorted members) is read by seeking back to
the members before the manifest once it verified.
Every file's SHA-256 must match the manifest. Only then is the model built: LightGBM's text
parsed, or model.skops loaded, and only if it holds nothing but scikit-learn's own types and
the safe types the trainers declare.

A refusal is a ``BundleError`` whose ``code`` says which check refused it (``bundle_damaged``,
``bundle_member_refused``, ``bundle_too_large``, ``bundle_manifest_invalid``,
``bundle_key_untrusted``, ``bundle_signature_invalid``, ``bundle_mismatch``,
``bundle_unsafe_model``), so a caller can record it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.audit.chain import canonical_json
from medops.clock import to_iso, utc_now
from medops.public_keys import decode_public, encode_public, key_id
from medops.registry.bundle_archive import MANIFEST, MAX_MEMBER_BYTES, entries, open_tape
from medops.registry.bundle_archive import BundleError as BundleError  # raised by every check, here and there
from medops.training.estimators import NativeModel, native_models, safe_types
from medops.training.input_schema import InputSchema
from medops.training.trainers import FittedModel

FORMAT = 1
FILES = ("input_schema.json", "output_schema.json", "metadata.json", "environment.lock")
INFERENCE = "inference.json"
SKOPS = "model.skops"
# The safe types (beyond what skops trusts by itself) are the model file's list, for runs and bundles
# alike: anything else in a bundle is refused, whoever signed it.

Source = bytes | str | os.PathLike[str]  # a bundle's bytes, or its file (read as a stream)


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
                raise BundleError(
                    f"{name} does not match its checksum in the manifest: the file was changed",
                    code="bundle_mismatch",
                    member=name,
                )
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
        "sizes": {name: len(data) for name, data in sorted(files.items())},  # checked against each tar header
        "key_id": key_id(public),
        "public_key": encode_public(public),
    }
    manifest["signature"] = base64.b64encode(private_key.sign(_signed_part(manifest))).decode("ascii")
    return _pack(_json(manifest), files)


def read(source: Source, trusted: dict[str, str], *, check_all: bool = True) -> Bundle:
    """A verified bundle from its bytes or its file; ``trusted`` maps key ids to public keys this
    workspace accepts.

    A file is read as a stream within the limits of ``bundle_archive``; the manifest's signature
    is verified before any other member is read. With ``check_all`` every file's checksum is
    checked now (import, export); without it each file is checked when first used (loading a
    model reads only what predicting needs).
    """
    allowed = member_names()
    manifest: dict[str, Any] | None = None
    files: dict[str, bytes] = {}
    later: dict[str, tuple[int, int]] = {}  # members before the manifest (an older medops): name -> (offset, size)
    with open_tape(source) as tape:
        for entry in entries(tape, allowed):
            if entry.name == MANIFEST:
                manifest = _verified_manifest(tape.read(entry.size, MANIFEST), trusted)
                for name, (_, size) in later.items():
                    _check_listed(manifest, name, size)
            elif manifest is not None:
                _check_listed(manifest, entry.name, entry.size)
                files[entry.name] = tape.read(entry.size, entry.name)
            elif tape.compressed:  # read forward only: reaching the manifest would inflate this member unchecked
                raise BundleError(
                    f"member {entry.name!r} comes before manifest.json in a compressed bundle: refused before "
                    "reading it",
                    code="bundle_member_refused",
                    hint="decompress the file (gunzip) and use the tar",
                    member=entry.name,
                )
            else:
                later[entry.name] = (entry.offset, entry.size)  # sought back once the manifest verified
        if manifest is None:
            raise BundleError("the bundle has no manifest.json", code="bundle_manifest_invalid")
        for name, (offset, size) in later.items():
            files[name] = tape.read_at(offset, size, name)
    listed = manifest["files"]
    form = tuple(sorted(set(listed) - set(FILES)))
    if not set(FILES) <= set(listed) or form not in model_forms() or sorted(files) != sorted(listed):
        raise BundleError(
            f"the bundle holds {sorted(files)}, its manifest lists {sorted(listed)}", code="bundle_mismatch"
        )
    bundle = Bundle(manifest, files)
    for name in listed if check_all else ():
        bundle.file(name)
    return bundle


def member_names() -> frozenset[str]:
    """Every name a bundle member may have."""
    return frozenset({MANIFEST, *FILES, *(n for form in model_forms() for n in form)})


def _verified_manifest(raw: bytes, trusted: dict[str, str]) -> dict[str, Any]:
    """The manifest, once its key is trusted and its signature verifies; nothing else is read before."""
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        raise BundleError("the bundle's manifest.json can't be read", code="bundle_manifest_invalid")
    kid = manifest.get("key_id")
    if not isinstance(kid, str) or kid not in trusted or trusted[kid] != manifest.get("public_key"):
        shown = kid if isinstance(kid, str) and len(kid) <= 64 else "(not a key id)"  # the manifest is the sender's
        raise BundleError(
            f"the bundle is signed with key {shown!r}, which this workspace does not trust",
            code="bundle_key_untrusted",
            hint="an admin can trust the exporting workspace's key",
        )
    try:
        signature = base64.b64decode(manifest.get("signature", ""), validate=True)
        decode_public(trusted[kid]).verify(signature, _signed_part(manifest))
    except (InvalidSignature, ValueError, TypeError):
        raise BundleError(
            "the manifest's signature does not verify: the manifest was changed after signing",
            code="bundle_signature_invalid",
        ) from None
    files, sizes = manifest.get("files"), manifest.get("sizes", {})
    well_formed = (
        isinstance(files, dict)
        and all(isinstance(v, str) for v in files.values())
        and isinstance(sizes, dict)
        and all(type(v) is int and 0 <= v <= MAX_MEMBER_BYTES for v in sizes.values())
        and (not sizes or set(sizes) == set(files))
    )
    if not well_formed:  # signed by a trusted key, yet not what medops writes
        raise BundleError("the bundle's manifest does not list its files and sizes", code="bundle_manifest_invalid")
    return manifest


def _check_listed(manifest: dict[str, Any], name: str, size: int) -> None:
    """A member's header against the verified manifest: listed, and of the size it records (when it does)."""
    if name not in manifest["files"]:
        raise BundleError(
            f"member {name!r} is not listed in the signed manifest: refused before reading it",
            code="bundle_mismatch",
            member=name,
        )
    declared = manifest.get("sizes", {}).get(name)
    if declared is not None and declared != size:
        raise BundleError(
            f"member {name!r} declares {size:,} bytes, the signed manifest {declared:,}: refused before reading it",
            code="bundle_mismatch",
            member=name,
        )


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
        raise BundleError(f"model.skops can't be read: {type(exc).__name__}", code="bundle_unsafe_model") from None
    unsafe = sorted(untrusted - safe_types())
    if unsafe:
        raise BundleError(
            f"model.skops holds types outside the safe list: {', '.join(unsafe[:5])}", code="bundle_unsafe_model"
        )
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
        raise BundleError(f"model.skops can't be read: {type(exc).__name__}", code="bundle_unsafe_model") from None
    meta = bundle.metadata
    return FittedModel(pipeline, list(meta["features"]), list(meta["classes"]))


def _signed_part(manifest: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"}).encode()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, indent=1, default=str).encode()


def _pack(manifest: bytes, files: dict[str, bytes]) -> bytes:
    """The tar, manifest first: a reader verifies it before reading, or inflating, any other member."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST, manifest), *sorted(files.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()  # not compressed: opening the model must cost no more than reading it
