"""Artifact filesystems by URL scheme: the one place that says which artifact roots work and how.

A root is a folder (no scheme), a ``file://`` URL, or any URL whose scheme fsspec implements.
The kinds registered here are the ones medops knows: local disk (written through the OS, so
fsync and atomic rename hold and readers use the files in place), fsspec's in-memory
filesystem (tests and the demo: it lives as long as the process) and the object stores, with
the package each needs. Any other scheme fsspec knows is accepted as a generic fsspec root;
``medops init`` and ``medops doctor`` prove it writable. Config validation, the store and
doctor all ask ``for_root``.
"""

from __future__ import annotations

from dataclasses import dataclass

from medops.errors import ConfigError


@dataclass(frozen=True)
class ArtifactFilesystem:
    """One kind of artifact root."""

    scheme: str
    description: str
    local: bool = False  # the OS's own files: durable writes, and readers need no cached copy
    persistent: bool = True  # False: the artifacts are gone when the process ends
    package: str = ""  # the package that implements it, when fsspec alone does not

    @property
    def install_hint(self) -> str:
        return f"install {self.package} (pip install {self.package})" if self.package else ""


_REGISTRY: dict[str, ArtifactFilesystem] = {}


def register(kind: ArtifactFilesystem, *aliases: str) -> None:
    """Make a scheme (and its aliases) a known artifact root."""
    for scheme in (kind.scheme, *aliases):
        _REGISTRY[scheme] = kind


_LOCAL = ArtifactFilesystem("file", "local disk", local=True)
register(_LOCAL, "local")
register(ArtifactFilesystem("memory", "fsspec's in-memory filesystem, gone when the process ends", persistent=False))
register(ArtifactFilesystem("s3", "Amazon S3 (or an S3-compatible store)", package="s3fs"), "s3a")
register(ArtifactFilesystem("gs", "Google Cloud Storage", package="gcsfs"), "gcs")
register(ArtifactFilesystem("az", "Azure Blob Storage / Data Lake", package="adlfs"), "abfs", "abfss")


def scheme_of(root: str) -> str:
    """The URL scheme of a root; a plain folder is ``file``. Chained URLs name their outer scheme."""
    head = root.split("::", 1)[0]
    if "://" not in head:
        return "file"
    return head.split("://", 1)[0].lower()


def for_root(root: str) -> ArtifactFilesystem:
    """The kind of filesystem behind ``root``; ConfigError when no filesystem serves its scheme."""
    scheme = scheme_of(root)
    if scheme in _REGISTRY:
        return _REGISTRY[scheme]
    from fsspec.registry import known_implementations, registry

    if scheme in registry or scheme in known_implementations:
        spec = known_implementations.get(scheme, {})
        where = spec.get("class") or getattr(registry.get(scheme), "__qualname__", scheme)
        return ArtifactFilesystem(scheme, f"fsspec ({where})", package=_package_of(spec.get("class", "")))
    raise ConfigError(
        f"artifact_root {root!r}: no filesystem for the scheme {scheme!r}",
        hint=f"use a folder or one of {known_schemes()}, or a scheme fsspec knows",
    )


def known_schemes() -> str:
    """The registered schemes as users write them, for hints and help (fsspec may know more)."""
    return ", ".join(sorted({f"{kind.scheme}://" for kind in _REGISTRY.values()}))


def _package_of(class_path: str) -> str:
    top = class_path.split(".", 1)[0]
    return "" if top in ("", "fsspec") else top
