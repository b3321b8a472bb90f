"""The one error hierarchy of medops: every failure a user can meet is a MedopsError.

    MedopsError
    ├── ConfigError              medops.toml or MEDOPS_* settings are wrong
    │   └── WorkspaceNotFound    no workspace where one was expected
    ├── StoreError               the metadata database can't be used
    │   ├── DatabaseUnreachable  can't connect
    │   ├── DatabaseBusy         another writer held the lock too long
    │   └── SchemaVersionError   schema older or newer than this medops
    ├── NotFound                 a named entity does not exist
    ├── Conflict                 the entity exists already / concurrent change
    │   └── InvalidTransition    a stage change the rules forbid (no passed gates, a missing signature...)
    ├── InvalidInput             a value the user gave is not acceptable
    │   └── SourceError          an input file or query can't be read (names file, line, column)
    ├── IntegrityError           stored bytes or records don't match their hash
    ├── AuthenticationFailed     wrong password, bad or expired token
    ├── PermissionDenied         the actor lacks the role for the action
    └── SignatureError           an e-signature can't be made or does not verify

Each class has a stable ``code`` and an ``http_status`` that the REST API maps once, and
an ``exit_code`` for the CLI. Messages reach users: keep PHI and secrets out of them.
"""

from __future__ import annotations


class MedopsError(Exception):
    """Base of every medops error; carries a one-line message and an optional hint."""

    code = "medops_error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(MedopsError):
    code = "config_error"
    http_status = 500
    exit_code = 2


class WorkspaceNotFound(ConfigError):
    code = "workspace_not_found"


class StoreError(MedopsError):
    code = "store_error"
    http_status = 503
    exit_code = 3


class DatabaseUnreachable(StoreError):
    code = "database_unreachable"


class DatabaseBusy(StoreError):
    code = "database_busy"


class SchemaVersionError(StoreError):
    code = "schema_version"


class NotFound(MedopsError):
    code = "not_found"
    http_status = 404


class Conflict(MedopsError):
    code = "conflict"
    http_status = 409


class InvalidTransition(Conflict):
    code = "invalid_transition"


class InvalidInput(MedopsError):
    code = "invalid_input"
    http_status = 422
    exit_code = 2


class SourceError(InvalidInput):
    code = "source_error"


class IntegrityError(MedopsError):
    code = "integrity_error"
    http_status = 500


class AuthenticationFailed(MedopsError):
    code = "authentication_failed"
    http_status = 401


class PermissionDenied(MedopsError):
    code = "permission_denied"
    http_status = 403


class SignatureError(MedopsError):
    code = "signature_error"
    http_status = 422


__all__ = [
    "AuthenticationFailed",
    "ConfigError",
    "Conflict",
    "DatabaseBusy",
    "DatabaseUnreachable",
    "IntegrityError",
    "InvalidInput",
    "MedopsError",
    "NotFound",
    "PermissionDenied",
    "SchemaVersionError",
    "SignatureError",
    "SourceError",
    "StoreError",
    "WorkspaceNotFound",
]
