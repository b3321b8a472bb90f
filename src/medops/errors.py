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

Each class has a stable ``code``, an ``http_status`` that the REST API maps once, and an
``exit_code`` for the CLI. A raise may name a finer stable code (``code="reason_required"``,
listed in CODES); adapters map codes to their own advice (the CLI to its options and
commands, see medops.cli.hints), so domain code never names a command-line option.
Messages reach users: keep PHI and secrets out of them.
"""

from __future__ import annotations


class MedopsError(Exception):
    """Base of every medops error; carries a one-line message and an optional hint."""

    code = "medops_error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None, **fields: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code  # one of CODES (a test holds every raise to that)
        self.fields = fields  # what an adapter's advice may name (an option, a view...): never PHI

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


class TooLarge(InvalidInput):
    """A request body or a page over the server's limit."""

    code = "body_too_large"
    http_status = 413


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


# The finer codes a raise may carry, with what they mean; stable once released.
CODES: dict[str, str] = {
    "alias_not_found": "the model has no such alias",
    "no_production_version": "the model has no version in production",
    "model_not_served": "the server does not serve that model",
    "canary_not_approved": "a canary answers patients: its version needs production's evidence and approvals",
    "variant_without_model": "a shadow or canary goes beside a model the server serves",
    "variant_twice": "one shadow and one canary at most per served model",
    "invalid_canary_share": "a canary's share of traffic is a percent between 0 and 100",
    "prediction_not_found": "no prediction with that id in the prediction log",
    "no_predictions": "the prediction log holds nothing of that model",
    "no_profile": "the model version has no reference profile",
    "dataset_not_scored": "no version of the model scored that dataset version in batch",
    "no_training_rows": "an imported version's training rows are not in this workspace",
    "profile_exists": "the model version already has its reference profile",
    "window_not_found": "no monitored window with that id",
    "alert_not_found": "no alert with that id",
    "labels_date_shifted": "an outcome feed's times were date-shifted per patient: they can't meet real times",
    "alert_state": "the alert is not in a state that allows this move",
    "invalid_table": "an Arrow or Parquet request body could not be read",
    "invalid_rows": "rows sent for prediction failed the input schema, field by field",
    "reason_required": "a change to an existing record must say why",
    "rejection_reason_required": "a rejection must say why",
    "acceptance_reason_required": "an evaluation acceptance must say what was reviewed",
    "key_note_required": "a trusted key must say whose it is",
    "token_expiry_invalid": "a token's lifetime must be positive",
    "account_locked": "too many failed sign-ins locked the account",
    "account_disabled": "the credential's user is disabled or locked",
    "login_required": "the action needs a verified login (a session or an API token)",
    "credential_invalid": "the token or session presented matches none in this workspace",
    "oidc_failed": "the identity provider's login did not complete: refused, expired, or not matching this server",
    "invalid_request": "the request's parameters or body are not what the API takes",
    "csrf_failed": "a change made with a browser's session cookie came without its CSRF token header",
    "session_expired": "the login session has expired",
    "session_ended": "the login session was ended (logout, or an admin's password reset)",
    "token_expired": "the API token has expired",
    "token_ended": "the API token was revoked",
    "not_a_session": "an API token was given where a login session was expected",
    "not_an_api_token": "a login session was given where an API token was expected",
    "password_change_required": "an admin reset the password: the user must change it before acting",
    "own_password_reset": "an admin can't reset their own password; they change it with the old one",
    "user_not_found": "no such user",
    "token_not_found": "no such API token",
    "run_not_found": "no such training run",
    "run_exists": "a run already has that id: a client names each new run by a new one",
    "run_not_running": "the run has ended: it takes no more values",
    "project_invalid": "the project file is not valid (the message names the file, line and field)",
    "run_not_trained": "the run was not made by medops train (no model, recipe or dataset)",
    "no_finished_training": "the experiment has no finished training run",
    "evaluation_not_found": "no such evaluation",
    "model_not_found": "no such registered model",
    "model_version_not_found": "no such version of a registered model",
    "deploy_folder_not_empty": "deployment files go into a new or empty folder",
    "dataset_not_found": "no such dataset version",
    "feature_view_not_applied": "the feature view was never applied",
    "feature_views_not_applied": "the project's feature views were never applied",
    "feature_view_unknown_source": "a feature view reads a dataset that does not exist",
    "online_not_materialized": "the online store holds nothing for the view",
    "online_stale": "the online store is older than the offline data",
    "entity_key_missing": "a lookup did not name the view's entity",
    "entity_lookup_unsupported": "a predict row named an entity, but the model was not trained from feature views",
    "pseudonym_key_mismatch": "the pseudonymization key is not the one the data were ingested with",
    "label_timestamp_unknown": "the labels' timestamp column is not named or not found",
    "project_file_missing": "no project file where one was expected",
    "project_file_invalid": "the project file is not valid",
    "project_option_invalid": "a project setting given on the command line is not valid",
    "bundle_key_untrusted": "the bundle was signed by a key this workspace does not trust",
    "bundle_damaged": "the bundle is not a readable tar (or gzip of one): a header or a member is broken",
    "bundle_member_refused": "a bundle member is not a plain file a bundle holds (a link, device, sparse file...)",
    "bundle_too_large": "a bundle's header declares, or its file holds, more than a reading limit allows",
    "bundle_manifest_invalid": "the bundle's manifest is missing or not what medops writes",
    "bundle_signature_invalid": "the bundle manifest's signature does not verify",
    "bundle_mismatch": "a bundle member is missing from its signed manifest, or differs in size or checksum",
    "bundle_unsafe_model": "the bundle's model file would build types outside the safe list, or can't be read",
    "bundle_not_registered": "a bundle file to serve is not byte for byte the registered version it names",
    "no_evaluation_on_record": "the version has no evaluation it could reach production with",
    "schema_missing": "the metadata database has no medops schema",
    "schema_outdated": "the metadata database's schema is older than this medops",
    "workspace_home_empty": "MEDOPS_HOME names a folder without medops.toml",
    "workspace_exists": "the folder is a medops workspace already",
    "signing_key_mismatch": "the signing key is not the workspace's pinned key",
    "keyring_missing": "the bundle keyring version the audit trail names is missing",
    "keyring_altered": "the bundle keyring differs from the version the audit trail recorded",
    "keyring_forged": "the bundle keyring is not signed by the workspace's key",
    "key_trusted_already": "the key is in the keyring already",
    "key_not_trusted": "the key is not in the keyring",
    "pipeline_run_not_found": "no pipeline run has that id",
    "pipeline_running": "a pipeline run of the project is under way in another process",
    "pipeline_step_unknown": "a step named on the command line is not one the project file makes",
    "pipeline_step_never_run": "a step before --from has never finished, so its outputs are not there to start from",
    "distrust_reason_required": "withdrawing trust in a key must say why",
    "state_unexplained": "a governed row was changed outside medops since its latest audit event",
    "checkpoint_key_missing": "a change can't be anchored: this process has no signing key",
    "clock_behind_trail": "the clock is behind the audit trail's last event beyond the tolerance",
    "verification_key_missing": "verifying the audit trail needs the workspace's (public) key",
    "not_explainable": "the model's kind has no exact per-feature explanation",
    "identifiers_not_copied": "a file's columns are not copied into predictions: they may hold identifiers",
    "output_exists": "the output file exists already",
}

__all__ = [
    "CODES",
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
