"""What to type next, per error code: the CLI's advice, kept out of the domain's errors.

A domain error says what went wrong and carries a stable code (medops.errors.CODES); the
command line knows its own options and commands, so the advice lives here. A code without an
entry keeps the error's own hint.
"""

from __future__ import annotations

from medops.errors import MedopsError

HINTS: dict[str, str] = {
    "alias_not_found": "see its versions and aliases with: medops models show {model}",
    "no_production_version": "name a version ({model}:VERSION or {model}@ALIAS), or promote one: medops models promote",
    "identifiers_not_copied": "join the output to the file by its 'row' column; --keep works for a dataset input",
    "output_exists": "choose another --output, or pass --overwrite",
    "prediction_not_found": "`medops predictions list` shows the logged ids (each response carries its prediction_id)",
    "no_profile": "build the missing profiles with: medops monitor profile --backfill",
    "no_predictions": "serve the model (medops serve) or name another model: medops models list",
    "window_not_found": "see the windows with: medops monitor list",
    "dataset_not_scored": "score it first (medops score {model} --input {dataset} -o FILE), or name the version: "
    "medops monitor run {model}:VERSION --dataset {dataset}",
    "alert_not_found": "see the alerts with: medops alerts list",
    "reason_required": "give --reason '...': it goes into the audit trail",
    "rejection_reason_required": "give --reason '...': it is recorded with the decision",
    "acceptance_reason_required": "say what was reviewed: --reason '...'",
    "key_note_required": "say whose key it is: --note 'Research workspace, site A'",
    "token_expiry_invalid": "--expires-in-days must be positive",
    "user_not_found": "`medops user list` shows the users",
    "token_not_found": "`medops token list` shows token ids",
    "run_not_found": "see the runs with: medops runs list",
    "pipeline_run_not_found": "see the runs with: medops pipelines list",
    "pipeline_running": "wait for it (medops pipelines list shows it), or stop that process first",
    "pipeline_step_unknown": "see the steps with: medops run --dry-run",
    "pipeline_step_never_run": "run the whole pipeline once: medops run",
    "run_not_trained": "train from a dataset with `medops train`: such runs store their model, recipe and data",
    "no_finished_training": "train one first: medops train",
    "evaluation_not_found": "see them with: medops evaluations list",
    "model_not_found": "see them with: medops models list",
    "model_version_not_found": "see them with: medops models show {model}",
    "deploy_folder_not_empty": "choose a new folder for --out, or pass --force to replace its files of the same names",
    "dataset_not_found": "see the datasets with: medops data list",
    "feature_view_not_applied": "run: medops features apply",
    "feature_views_not_applied": "run: medops features apply",
    "feature_view_unknown_source": "see the datasets with: medops data list",
    "entity_key_missing": "pass --entity {entity}=ID",
    "label_timestamp_unknown": "{hint}; name the right one with --timestamp",
    "project_file_missing": "pass --project FILE, or create one with: medops init DIR --template readmission",
    "project_file_invalid": "see what is wrong with: medops project check",
    "project_option_invalid": "check the value of --{option}",
    "bundle_key_untrusted": "an admin can trust the exporting workspace's key: medops models trust-key",
    "bundle_not_registered": "serve the bundle the registry holds: medops models export NAME:VERSION FILE",
    "no_evaluation_on_record": "evaluate the run (medops evaluate) and register it",
    "schema_missing": "run `medops db upgrade` (or `medops init`)",
    "schema_outdated": "run `medops db upgrade`",
    "workspace_not_found": "run `medops init DIR` to create one, or give --home / set MEDOPS_HOME",
    "workspace_home_empty": "run `medops init {home}` or point MEDOPS_HOME at an existing workspace",
    "online_not_materialized": "run `medops features materialize {view}` to fill it",
    "online_stale": "run `medops features materialize {view}` again if its data is the newer",
    "workspace_exists": "open it with --home or MEDOPS_HOME, or cd into it",
    "state_unexplained": "see every such row with `medops audit verify --state`; restore them from a verified backup",
    "signing_key_mismatch": "point signing_key_file or MEDOPS_SIGNING_KEY at this workspace's key (medops doctor)",
    "keyring_missing": "restore keyring/ in the artifact store from a backup; `medops models trusted-keys` checks it",
    "keyring_altered": "restore keyring/ in the artifact store from a backup; `medops models trusted-keys` checks it",
    "key_not_trusted": "`medops models trusted-keys` lists the trusted keys",
    "distrust_reason_required": "say why: --reason 'Site A key compromised'",
    "login_required": "run: medops login",
    "session_expired": "run: medops login",
    "session_ended": "run: medops login",
    "credential_invalid": "run: medops login (if MEDOPS_TOKEN is set, it holds no token of this workspace: unset it)",
    "token_expired": "get a new API token (medops token create), or unset MEDOPS_TOKEN and run: medops login",
    "token_ended": "get a new API token (medops token create), or unset MEDOPS_TOKEN and run: medops login",
    "password_change_required": "choose a new one, giving the temporary password as the old: medops user passwd {user}",
    "own_password_reset": "run `medops user passwd` (no name): it asks for your old password, then the new one",
    "verification_key_missing": "{hint}: `medops audit verify --public-key KEY`, with the key that "
    "`medops models public-key` prints where the key is",
}


def hint_for(exc: MedopsError) -> str | None:
    """The CLI's advice for the error's code, filled with the error's fields (``{hint}`` is the
    error's own hint), else the error's own hint."""
    advice = HINTS.get(exc.code)
    if advice is None:
        return exc.hint
    fields = {key: value.replace("_", "-") if key == "option" else value for key, value in exc.fields.items()}
    try:
        return advice.format(hint=exc.hint or "", **fields)
    except (KeyError, IndexError):
        return exc.hint
