"""The lifecycle demo on bundled data: the governance foundation, data in, then features.

Synthetic raw data with PHI is generated into a project folder outside the workspace,
ingested through contracts and de-identification into versioned datasets, and the
reports (quarantined rows, de-identification, k-anonymity, lineage) are shown. The
project's feature views are then applied, a point-in-time training set is built from the
readmission labels, the views are materialized online and served, and train/serve
consistency is checked. The model is trained, evaluated, registered and promoted, and the
production version is finally served over HTTP in-process and called with a predictor's token.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from medops.audit import AuditFilter, list_events, verify_chain
from medops.audit.state_check import check_state
from medops.caller import Caller
from medops.data.datasets import get as get_dataset
from medops.data.ingest import ingest
from medops.errors import AuthenticationFailed, PermissionDenied
from medops.features import FeatureStore
from medops.identity import Role
from medops.identity.keys import write_private_file
from medops.services.projects import LoadedProject, load_project
from medops.services.projects.ingest import table_plan
from medops.services.projects.templates import scaffold
from medops.store.database import Database
from medops.store.lineage import walk
from medops.workspace import Workspace, init_workspace

DEMO_PASSWORD = "demo-password-not-for-production"
DEMO_PATIENTS = 3200  # in the generated world; the first extract holds those with a stay by then
WORLD_START, WORLD_DAYS = date(2025, 1, 1), 608  # to 2026-09-01
FIRST_EXTRACT = date(2026, 1, 1)  # what the model is first trained on
NORTH_PROTOCOL = date(2026, 6, 1)  # the drift: the north site draws fewer labs from here on
LATEST_EXTRACT = date(2026, 9, 1)  # what retraining reads
PRODUCTION_FROM = date(2026, 3, 1)  # six months of production, the last three after the drift
PEOPLE = [  # user, printed name, roles
    ("alice", "Alice Moreau", [Role.DATA_SCIENTIST]),
    ("ming", "Ming Chen", [Role.ML_ENGINEER]),
    ("victor", "Victor Okafor", [Role.VALIDATOR]),
    ("carol", "Dr Carol Reyes", [Role.CLINICAL_REVIEWER]),
    ("oscar", "Oscar Lindqvist", [Role.AUDITOR]),
]


@dataclass
class DemoResult:
    home: Path
    steps: list[tuple[str, str]] = field(default_factory=list)
    events: int = 0
    chain_ok: bool = False
    tamper_caught_at: int | None = None
    state_ok: bool = False  # every governed row matches its latest audit event
    state_tamper_named: list[str] = field(default_factory=list)  # the rows a SQL edit in a copy was caught in
    reports: list[Path] = field(default_factory=list)  # each evaluation's report, model card and documents


def run_demo(
    root: Path | None = None,
    *,
    say: Callable[[str, str], None] = lambda step, result: None,
    patients: int = DEMO_PATIENTS,
    artifact_root: str | None = None,
    tuning: Callable[[int, int | None, float], None] | None = None,
) -> DemoResult:
    """Run the demo in ``root`` (default: a new temporary folder) and report each step.

    ``artifact_root`` puts the workspace's artifacts elsewhere (any folder or fsspec URL, such
    as ``memory://demo``); by default they are in the workspace folder. ``tuning`` hears of
    each finished trial of the search (trials so far, budget, best score): a progress bar.
    """
    base = Path(tempfile.mkdtemp(prefix="medops-demo-")) if root is None else root
    home = base / "workspace"
    result = DemoResult(home=home)

    def step(name: str, outcome: str) -> None:
        result.steps.append((name, outcome))
        say(name, outcome)

    ws = init_workspace(
        home,
        admin_username="ada",
        admin_full_name="Ada Okonkwo",
        admin_password=DEMO_PASSWORD,
        key_dir=base / "keys",
        project_file=str(base / "project" / "medops.yaml"),
        artifact_root=artifact_root,
    )
    # The demo's data are synthetic and seeded; so is its pseudonym key (a real workspace's is random):
    # pseudonyms and per-patient date shifts, and with them every feature and model, are the same
    # from one demo to the next.
    write_private_file(Path(ws.settings.pseudonym_key_file), hashlib.sha256(b"medops demo, seed 7").hexdigest())
    step(
        "init",
        f"workspace at {home}, artifacts in {ws.settings.artifact_root}; first admin 'ada'; "
        "the demo's pseudonym key is fixed, so its models repeat",
    )
    with ws:
        _people(ws, step)
        _artifacts_and_signatures(ws, step)
        _access_control(ws, step)
        project = _data(ws, base / "project", step, patients)
        _features(ws, project, step)
        baseline, tuned = _train(ws, project, step, tuning)
        passed = _evaluate(ws, project, step, base / "reports", baseline, tuned, result.reports)
        chosen = "tuned" if passed[tuned] else "baseline"
        chosen_run = tuned if passed[tuned] else baseline
        _registry(ws, step, chosen_run, passed, base / "reports" / chosen, result.reports, base / "project", patients)
        _evidence(ws, step, base / "reports", result.reports)
        check = ws.verify_audit()
        result.events, result.chain_ok = check.chain.checked, check.ok
        signed = f"; {check.checkpoints} signed checkpoints, the newest at event {check.anchored_at}"
        step("audit verify", f"{check.chain.checked} events, chain {'intact' if check.ok else 'BROKEN'}{signed}")
        rows = check_state(ws.db)
        result.state_ok = rows.ok
        step("audit state", f"{rows.checked} governed rows (users, tokens, models, evaluations, keys) match the trail")
    result.tamper_caught_at = _tamper_copy(home, base / "tampered.db", step)
    result.state_tamper_named = _tamper_state(home, base / "granted.db", step)
    return result


def _evidence(ws: Workspace, step: Callable[[str, str], None], reports: Path, files: list[Path]) -> None:
    """An auditor's evidence for the newest served prediction: the package, signed with the workspace key,
    checked with the public key alone, as a verifier who has neither the workspace nor its database would."""
    from medops.evidence.package import verify
    from medops.services import Services
    from medops.serving.prediction_log import PredictionFilter

    services = Services(ws)
    victor = Caller("victor")  # a validator who also holds the auditor role
    newest = services.predictions.list(victor, PredictionFilter(), limit=1)
    if not newest:
        return
    folder = reports / f"evidence-{newest[0].id[:8]}"
    doc = services.evidence.prediction(victor, newest[0].id, out=folder).document
    check = verify(folder, ws.workspace_public_key())
    files.append(folder / "evidence.html")
    signed = sum(1 for d in doc["approvals"]["decisions"] if d["valid"])
    replay = "the same answer" if doc["replay"]["identical"] else "a DIFFERENT answer"
    step(
        "evidence",
        f"prediction {newest[0].id[:8]} by {doc['served_by']['model']}:{doc['served_by']['version']}: bundle "
        f"{'verified' if doc['bundle']['verified'] else 'NOT verified'}, {signed} signatures valid, replayed to "
        f"{replay}; package {folder.name} ({check.checked} files) "
        f"{'verifies' if check.ok else 'does NOT verify'} with the public key alone",
    )


def _people(ws: Workspace, step: Callable[[str, str], None]) -> None:
    for username, name, roles in PEOPLE:
        ws.users.add("ada", username, name, DEMO_PASSWORD, roles, reason="demo team")
    step("users", "added " + ", ".join(f"{u} ({r[0].value})" for u, _, r in PEOPLE))
    ws.users.grant("ada", "victor", Role.AUDITOR, reason="also reviews audit exports for QA")
    step("grant", "victor also holds auditor")


def _artifacts_and_signatures(ws: Workspace, step: Callable[[str, str], None]) -> None:
    data = b"patient_pseudonym,readmitted_30d\np_7f3a,0\np_91c2,1\n"
    digest = ws.artifacts.put(data)
    assert ws.artifacts.read_bytes(digest) == data
    step("artifact", f"stored {len(data)} bytes as sha256:{digest[:12]}…, read back verified")
    record = {"kind": "validation_plan", "artifact": digest, "use_case": "30-day readmission"}
    for signer, meaning in (("victor", "reviewed"), ("carol", "approved")):
        sig = ws.signatures.sign(
            signer, DEMO_PASSWORD, record_type="validation_plan", record_id="plan-1", record=record, meaning=meaning
        )
        step("e-signature", sig.display())
    valid = all(ws.signatures.verify(s.id, record).valid for s in ws.signatures.for_record("validation_plan", "plan-1"))
    changed = {**record, "use_case": "sepsis"}
    broken = not any(
        ws.signatures.verify(s.id, changed).valid for s in ws.signatures.for_record("validation_plan", "plan-1")
    )
    step("verify signatures", f"valid on the signed record: {valid}; refused on an altered record: {broken}")
    try:
        ws.signatures.sign(
            "carol",
            "wrong password",
            record_type="validation_plan",
            record_id="plan-1",
            record=record,
            meaning="approved",
        )
    except AuthenticationFailed:
        step("wrong password", "signature refused, failed attempt audited")


def _access_control(ws: Workspace, step: Callable[[str, str], None]) -> None:
    token, _secret = ws.tokens.create("alice", "notebook", expires_in_days=30)
    step("token", f"alice created API token {token.id} (secret shown once, stored hashed)")
    try:
        ws.users.add("alice", "mallory", "Mallory", DEMO_PASSWORD, [Role.ADMIN])
    except PermissionDenied:
        step("permission denied", "alice (data_scientist) tried to add a user: refused and audited")
    ws.tokens.revoke("alice", token.id, reason="demo finished")
    ws.users.disable("ada", "oscar", reason="audit engagement ended")
    step("revoke, disable", f"token {token.id} revoked; oscar disabled")
    denied = list_events(ws.db, AuditFilter(action="user.add.denied"), limit=5)
    step("audit log", f"{len(denied)} denied attempt(s) on record, e.g. by {denied[0].actor if denied else '-'}")


def world(patients: int) -> Any:
    """The demo's hospital over 20 months, seeded: from June 2026 the north site's new admission protocol
    draws 40 % fewer labs (the generator's missingness_spike scenario)."""
    from medops.synth import generate

    return generate(patients, seed=7, scenario="missingness_spike", start=WORLD_START, days=WORLD_DAYS,
                    drift_at=NORTH_PROTOCOL)  # fmt: skip


def _data(ws: Workspace, folder: Path, step: Callable[[str, str], None], patients: int) -> LoadedProject:
    from medops.synth import write
    from medops.synth.extracts import on_record

    scaffold(folder, "readmission", data=False)
    extract = on_record(world(patients), FIRST_EXTRACT)
    write(extract, folder / "raw", "csv")
    step(
        "synthetic data",
        f"the EHR's extract of {FIRST_EXTRACT}: {len(extract.patients):,} patients with PHI (names, SSN, MRN, "
        f"notes), {len(extract.encounters):,} stays since {WORLD_START}, in {folder / 'raw'}",
    )
    project = load_project(folder / "medops.yaml")
    step("project check", f"{project.spec.name}: {len(project.spec.sources)} sources, contracts and de-id rules valid")
    results = {}
    for name in project.spec.sources:
        results[name] = result = ingest(ws, table_plan(project, name), actor="alice", reason="demo: first load")
        d = result.dataset
        extra = f", {result.quarantine.rows} rows quarantined" if result.quarantine else ""
        step("ingest", f"{d.ref}: {d.rows:,} rows x {d.column_count} columns, contract {d.contract_result}{extra}")
    obs = results["observations"]
    if obs.quarantine is not None and obs.validation is not None:
        for rule in obs.dataset.details["contract"]["rules"]:
            sample = rule["samples"][0] if rule["samples"] else {}
            shown = {k: sample.get(k) for k in ("_row", "patient_id", "code", "value", "unit")}
            step("contract report", f"{rule['rule']}: {rule['failures']} rows, e.g. {shown}")
    deid = results["patients"].dataset.details["deid"]
    dropped = [c["column"] for c in deid["columns"] if c["action"] == "drop"]
    step("de-identification", f"patients: dropped {', '.join(dropped)}; ZIP to ZIP3, birth date to year")
    step(
        "k-anonymity",
        f"k = {deid['k_anonymity']} over (age band, sex, ZIP3); "
        f"{deid['share_below_k5']:.1%} of patients in groups under 5",
    )
    notes = results["notes"].dataset.details["deid"]["text_redactions"]
    step("note redaction", ", ".join(f"{k} {v:,}" for k, v in sorted(notes.items()) if v))
    again = ingest(ws, table_plan(project, "observations"), actor="alice", chunk_rows=5000)
    step("re-ingest", f"same data, other chunk size: {again.dataset.ref}, new version: {again.new}")
    up = walk(ws.db, results["notes"].dataset.node, "up")
    step("lineage", "; ".join(f"{e.relation} from {Path(str(e.attrs.get('source'))).name}" for e in up))
    return project


TRAINING_FEATURES = ["admissions", "labs", "fills", "demographics", "age_years"]


def _features(ws: Workspace, project: LoadedProject, step: Callable[[str, str], None]) -> None:
    with FeatureStore(ws, project.features) as store:
        applied = store.apply("alice", reason="demo: readmission features")
        step(
            "features apply",
            ", ".join(f"{r.view.ref} ({len(r.view.definition['features'])} features)" for r in applied),
        )
        info, _new = store.save_training_set(
            "readmission_training",
            "readmission_labels",
            TRAINING_FEATURES,
            timestamp="label_time",
            actor="alice",
            reason="demo: point-in-time training set",
        )
        frame = pq.read_table(ws.artifacts.local_path(info.version)).to_pandas()
        step(
            "training set",
            f"{info.ref}: {info.rows:,} label rows x {info.column_count} columns, each row's features as of its "
            f"discharge; {frame['hba1c_mean_365d'].isna().mean():.0%} without an HbA1c in the year before",
        )
        step("backfill guard", _backfill_story(ws, store))
        try:
            store.materialize("alice")
        except PermissionDenied:
            step("permission denied", "alice (data_scientist) tried to materialize online features: refused")
        written = store.materialize("ming", reason="demo: serve features")
        step("materialize", ", ".join(f"{v} {n:,} entities" for v, n in written.items()) + " -> online store")
        patient = str(frame["patient_id"].iloc[0])
        online = store.get_online_features({"patient_id": [patient]}, ["admissions", "demographics", "age_years"])
        row = online.frame.iloc[0]
        step(
            "online lookup",
            f"{patient[:12]}…: {int(row['admissions_365d'])} stays in the last year, "
            f"last {row['last_primary_dx']}, age {row['age_years']}",
        )
        report = store.check("victor", sample=50)
        step(
            "consistency",
            f"{sum(report.checked.values())} samples recomputed: "
            + ("online = offline" if report.ok else f"{len(report.differences)} differences"),
        )
    up = walk(ws.db, info.node, "up", depth=2)
    step("lineage", f"{info.ref} <- " + ", ".join(sorted({e.src.split("@")[0] for e in up if e.dst == info.node})))


def _train(
    ws: Workspace,
    project: LoadedProject,
    step: Callable[[str, str], None],
    tuning: Callable[[int, int | None, float], None] | None,
) -> tuple[str, str]:
    from medops.services.projects.train import train_from_project
    from medops.training import Tracker

    first = train_from_project(ws, project, caller=Caller("alice"), reason="demo: baseline")
    m = first.metrics
    step(
        "train",
        f"run {first.run_id[:12]} (LightGBM, patient-grouped split, leakage checks passed): test AUROC "
        f"{m['test_auroc']:.3f}, AUPRC {m['test_auprc']:.3f}, model sha256:{first.model_sha256[:12]}",
    )
    from medops.training.reproduce import reproduce
    from medops.training.tuning import TuneResult

    again = reproduce(Tracker(ws), first.run_id, actor="alice")
    same = "the same model file and metrics" if again.reproduced else f"a DIFFERENT model ({'; '.join(again.causes)})"
    step("reproduce", f"run {again.result.run_id[:12]} retrained from the recorded recipe: {same}")
    search = project.spec.train.tune if project.spec.train else None
    budget = search.trials if search else None
    heard = (lambda done, best: tuning(done, budget, best)) if tuning else None
    tuned = train_from_project(ws, project, caller=Caller("alice"), reason="demo: tuned", tune=True, progress=heard)
    assert isinstance(tuned, TuneResult)
    step(
        "tune",
        f"run {tuned.run_id[:12]}: {tuned.trials} Optuna trials as nested runs ({tuned.pruned} pruned), best "
        f"validation AUROC {tuned.best_score:.3f}; refit, test AUROC {tuned.metrics['test_auroc']:.3f} "
        f"(baseline {m['test_auroc']:.3f})",
    )
    info = Tracker(ws).get(first.run_id)
    code = info.git_commit[:12] if info.git_commit else "not in git"
    step(
        "run record",
        f"{len(info.params)} parameters, inputs {', '.join(i['name'] for i in info.inputs)}, code {code}, "
        f"environment {str(info.env_digest)[:12]} ({info.host})",
    )
    return first.run_id, tuned.run_id


def _evaluate(
    ws: Workspace,
    project: LoadedProject,
    step: Callable[[str, str], None],
    out: Path,
    baseline: str,
    tuned: str,
    reports: list[Path],
) -> dict[str, bool]:
    """The validator evaluates both models against the project's policy; the tuned one against the baseline."""
    from medops.services.projects.evaluate import evaluate_from_project

    passed = {}
    for name, run, champion in (("baseline", baseline, None), ("tuned", tuned, baseline)):
        done = evaluate_from_project(ws, project, run, champion=champion, caller=Caller("victor"), out=out / name)
        doc = done.doc
        failed = [g["criterion"] for g in doc["gates"] if not g["passed"]]
        m = doc["metrics"]
        versus = ""
        if doc["champion"]:
            c = doc["champion"]
            versus = f"; vs baseline AUROC {c['difference']:+.3f} ({c['low']:+.3f} to {c['high']:+.3f})"
        step(
            f"evaluate {name}",
            f"AUROC {m['auroc']['value']:.3f} ({m['auroc']['low']:.3f}-{m['auroc']['high']:.3f}), sensitivity "
            f"{m['sensitivity']['value']:.3f} at threshold {doc['threshold']['value']:.3f}{versus}; "
            f"{len(doc['gates']) - len(failed)}/{len(doc['gates'])} gates passed"
            + (f" (failed: {'; '.join(failed)})" if failed else ""),
        )
        groups = doc["subgroups"]["groups"] if doc["subgroups"] else []
        flagged = [f"{g['attribute']}={g['group']}" for g in groups if g["flagged"]]
        small = sum(g["too_small"] for g in groups)
        step(
            "subgroups",
            f"{len(groups)} groups over {len(doc['subgroups']['attributes']) if doc['subgroups'] else 0} attributes "
            f"and their intersections, {small} too small to judge; flagged: {', '.join(flagged) or 'none'}",
        )
        robust = ", ".join(
            f"{r['name']} {r['auroc_change']:+.3f}{' (caught)' if r['caught'] else ''}" for r in doc["robustness"]
        )
        step("robustness", f"AUROC change: {robust}")
        step("reports", f"evaluation {done.info.short}: " + ", ".join(str(f) for f in done.files))
        reports += done.files
        passed[run] = bool(doc["passed"])
    return passed


def _registry(
    ws: Workspace,
    step: Callable[[str, str], None],
    run: str,
    passed: dict[str, bool],
    card_folder: Path,
    reports: list[Path],
    project_folder: Path,
    patients: int,
) -> None:
    """alice registers the model; production is refused until carol and victor sign; ming promotes it."""
    from medops.errors import InvalidTransition
    from medops.registry import approvals, stages, versions
    from medops.services import Services

    name = "readmission_30d"
    registry = Services(ws).registry  # registering through the service also stores the reference profile
    version = registry.register(Caller("alice"), run, name, reason="demo: candidate for production")
    step(
        "register",
        f"{version.ref} from run {run[:12]} (evaluation {'passed' if passed[run] else 'FAILED'}); "
        "its reference profile stored for monitoring",
    )
    try:
        stages.promote(ws, name, version.version, "production", actor="ming", reason="demo: before any signature")
    except InvalidTransition as exc:
        step("promote refused", exc.message)
    try:
        approvals.approve(ws, (name, version.version), "alice", DEMO_PASSWORD, "validator")
    except PermissionDenied as exc:
        step("sign refused", exc.message)
    for user, role in (("carol", "clinical_reviewer"), ("victor", "validator")):
        decision = approvals.approve(ws, (name, version.version), user, DEMO_PASSWORD, role)
        step("approve", f"{decision.username} signed as {decision.role}: approved for production (Part 11 e-signature)")
    try:
        stages.promote(ws, name, version.version, "production", actor="ming", reason="demo: CAB approval")
        step("promote", f"{version.ref} is in production (ming, ml_engineer)")
    except InvalidTransition as exc:
        step("promote refused", exc.message)
    story = [
        f"{e.action} by {e.actor}"
        for e in list_events(ws.db, AuditFilter(entity_type="model"), limit=None, newest_first=False)
    ]
    step("model audit trail", "; ".join(story))
    _serve_one(ws, step, version.ref, run)
    if versions.get(ws, name, version.version).stage == "production":  # `medops serve NAME` serves production
        _serve_http(ws, step, name, run)
        _production_months(ws, step, name, run, card_folder, reports, project_folder, patients)


def _next_version(ws: Workspace, step: Callable[[str, str], None], name: str, run: str) -> int:
    """A second version (the same run registered again, standing in for a retrained model) approved and promoted."""
    from medops.registry import approvals, stages
    from medops.services import Services

    second = Services(ws).registry.register(Caller("alice"), run, name, reason="demo: the next version")
    for user, role in (("carol", "clinical_reviewer"), ("victor", "validator")):
        approvals.approve(ws, (name, second.version), user, DEMO_PASSWORD, role)
    moves = stages.promote(ws, name, second.version, "production", actor="ming", reason="demo: the next version")
    archived = [m.version for m in moves if m.name == "archived"]
    step("promote", f"{second.ref} approved and in production (ming); version {archived[0]} archived")
    return second.version


def _serve_http(ws: Workspace, step: Callable[[str, str], None], name: str, run: str) -> None:
    """`medops serve` for the production version, in-process: a predictor's token, three requests, a rollback
    swapped in under load, then stopped; the prediction log read back and replayed."""
    import httpx

    from medops.registry import stages
    from medops.server.app import create_app
    from medops.server.background import serving_in_thread
    from medops.server.guard import ServerOptions
    from medops.services import Services

    services = Services(ws)
    admin = Caller("ada")
    services.identity.add_user(
        admin, "pat", "Pat Integration", DEMO_PASSWORD, [Role.PREDICTOR], reason="demo: the EHR's integration user"
    )
    _, secret = services.identity.create_token(
        admin, "ehr-integration", username="pat", expires_in_days=1, reason="demo: the EHR calls the model"
    )
    first = _next_version(ws, step, name, run) - 1
    # as `medops serve NAME` builds it, checking the registry five times a second (the default is every 5 s)
    app = create_app(services, services.serving.load([name]), ServerOptions(follow_interval=0.2))
    with (
        serving_in_thread(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as http,
    ):
        detail = http.get(f"/v1/models/{name}").json()
        step(
            "serve",
            f"medops serve {name}: version {detail['version']} on {url} (bundle {detail['bundle_sha256'][:12]}, "
            "verified); pat (predictor) calls it with an API token",
        )
        example = detail["example"]
        answer = http.post(f"/v1/models/{name}/predict", json=example)
        (row,) = answer.json()["predictions"]
        step(
            "http predict",
            f"HTTP {answer.status_code}: the model's example row: probability {row['probability']:.3f}, "
            f"decision {row['decision']} at threshold {row['threshold']:.3f}",
        )
        field = "temperature_max_30d"  # the demo model's temperature, in Celsius
        if example.get(field) is not None:
            wrong = {**example, field: example[field] * 1.8 + 32}
            refused = http.post(f"/v1/models/{name}/predict", json=wrong)
            error = refused.json()["error"]
            problems = "; ".join(f"{f['field']} {f['code']} ({f['message']})" for f in error.get("fields", []))
            step("http refused", f"HTTP {refused.status_code} {error['code']}: Fahrenheit sent: {problems}")
        explained = http.post(f"/v1/models/{name}/predict", params={"explain": "true"}, json=example)
        why = explained.json()["predictions"][0]["explanation"]
        top = sorted(why["contributions"].items(), key=lambda kv: abs(kv[1]), reverse=True)[:3]
        step(
            "http explain",
            f"HTTP {explained.status_code}: raw score {why['raw_score']:.3f} ({why['scale']}) = base "
            f"{why['base']:.3f} + {len(why['contributions'])} contributions; largest: "
            + ", ".join(f"{k} {v:+.3f}" for k, v in top),
        )
        rollback = lambda: stages.rollback(ws, name, actor="ming", reason="demo: roll back while serving")  # noqa: E731
        _hot_swap(step, http, name, example, first, rollback, f"medops models rollback {name}")
    step("serve stop", "the server stopped, its prediction spool drained into the metadata store")
    _prediction_log(services, step, name)


def _hot_swap(
    step: Callable[[str, str], None],
    http: Any,
    name: str,
    example: dict[str, Any],
    to: int,
    move: Callable[[], Any],
    command: str,
) -> None:
    """A registry move (``command``, done by ``move``) while requests keep coming: the server swaps the
    version in, none fails."""
    import threading
    import time

    answered: list[int] = []
    failed: list[int] = []
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            answer = http.post(f"/v1/models/{name}/predict", json=example)
            if answer.status_code == 200:
                answered.append(answer.json()["predictions"][0]["version"])
            else:
                failed.append(answer.status_code)

    thread = threading.Thread(target=caller, name="demo-load")
    thread.start()
    try:
        while len(answered) < 20 and thread.is_alive():  # requests flowing before the move
            time.sleep(0.01)
        move()
        deadline = time.monotonic() + 60  # a bound on the wait for the follower, not a measurement
        while time.monotonic() < deadline and not answered[-10:] == [to] * 10:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(30)
    before = answered.index(to) if to in answered else len(answered)
    step(
        "hot swap",
        f"{command}: the server followed production from version {answered[0]} to {to} while answering "
        f"({before} answers by {answered[0]}, {len(answered) - before} by {to}, {len(failed)} failed)",
    )


def _serve_while(
    ws: Workspace, step: Callable[[str, str], None], name: str, move: Callable[[], Any], to: int, command: str
) -> None:
    """`medops serve NAME` again, called by the EHR's integration user, while ``move`` changes production."""
    import httpx

    from medops.server.app import create_app
    from medops.server.background import serving_in_thread
    from medops.server.guard import ServerOptions
    from medops.services import Services

    services = Services(ws)
    _, secret = services.identity.create_token(
        Caller("ada"), "ehr-integration-2", username="pat", expires_in_days=1, reason="demo: the EHR calls the model"
    )
    app = create_app(services, services.serving.load([name]), ServerOptions(follow_interval=0.2))
    with (
        serving_in_thread(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as http,
    ):
        example = http.get(f"/v1/models/{name}").json()["example"]
        _hot_swap(step, http, name, example, to, move, command)


def _prediction_log(services: Any, step: Callable[[str, str], None], name: str) -> None:
    """`medops predictions list` and `medops predictions replay`, as ming (ml_engineer) runs them."""
    from collections import Counter

    from medops.serving.prediction_log import PredictionFilter

    ming = Caller("ming")
    where = PredictionFilter(model=name)
    logged = services.predictions.list(ming, where, limit=100_000)
    versions = Counter(p.version for p in logged)
    explained = sum(1 for p in logged if p.explanation)
    step(
        "prediction log",
        f"medops predictions list: {len(logged)} answers kept before they were sent ("
        + ", ".join(f"{n} by version {v}" for v, n in sorted(versions.items()))
        + f"; {explained} with its explanation); the refused Fahrenheit row was never answered, so never logged",
    )
    report = services.predictions.replay(ming, where)
    outcome = "every answer identical" if report.identical else f"{len(report.differences)} differ"
    step(
        "replay",
        f"medops predictions replay: {report.replayed} inputs re-scored with their verified bundles: {outcome}",
    )


PRODUCTION_MONTHS = 6
REQUESTS_A_MONTH = 400
LABS = ("hba1c_mean_365d", "creatinine_max_90d", "heart_rate_mean_30d", "temperature_max_30d")


def _production_months(
    ws: Workspace,
    step: Callable[[str, str], None],
    name: str,
    run: str,
    card_folder: Path,
    reports: list[Path],
    folder: Path,
    patients: int,
) -> None:
    """Six months of production, simulated: the EHR's requests (patients drawn from the model's own
    population) scored by the production bundle and logged with the times they would have had; from
    the fourth month the north site's new protocol draws 40 % fewer labs. The EHR's latest extract
    lands; `medops monitor run` judges the months and the data quality alert, whose rule says
    ``retrain: true``, runs the pipeline on that extract to a challenger (see `_challenger`). ming
    acknowledges the alert, and the report is written beside the production model's card."""
    from medops.services import Services

    first = datetime(PRODUCTION_FROM.year, PRODUCTION_FROM.month, 1, tzinfo=UTC)
    version, logged, month = simulate_production(ws, name, run, first, PRODUCTION_MONTHS, REQUESTS_A_MONTH)
    step(
        "production months",
        f"simulated: {logged:,} EHR requests over {PRODUCTION_MONTHS} months from {first:%Y-%m}, scored by "
        f"{version} and logged with the times they would have had; from the fourth month the north "
        "site's new admission protocol draws 40 % fewer labs",
    )
    extract = land_extract(world(patients), LATEST_EXTRACT, folder / "raw")
    labels = extract.outcomes["readmission_30d"]
    since = int((labels["label_time"] >= datetime(FIRST_EXTRACT.year, 1, 1)).sum())
    step(
        "latest extract",
        f"the EHR's extract of {LATEST_EXTRACT} lands in raw/: {len(extract.encounters):,} stays ({since:,} since "
        f"{FIRST_EXTRACT}), {int(labels['readmitted_30d'].notna().sum()):,} outcomes known",
    )
    services = Services(ws)
    ming = Caller("ming")
    ran = services.monitoring.run(ming, name, since=first, until=month)  # the alert retrains: see _challenger
    changes = []
    for window in ran.windows:
        _, doc = services.monitoring.show(ming, window.id)
        missing = [
            f"{feature} missing {found['missing']['reference']:.0%} -> {found['missing']['current']:.0%}"
            for feature, found in doc["features"].items()
            if (found.get("missing") or {}).get("flagged")
        ]
        if missing or window.drifted:
            changes.append(f"{window.label}: " + ", ".join([*missing, *(f"{f} drifted" for f in window.drifted)]))
    step(
        "monitor run",
        f"medops monitor run {name}: {len(ran.windows)} monthly windows judged against {version}'s reference "
        f"profile; {len(ran.windows) - len(changes)} quiet; " + ("; ".join(changes) or "no change"),
    )
    for alert in ran.alerts:
        step("alert", f"{alert.severity} {alert.rule} on {alert.model}:{alert.version}: {alert.condition}")
    for retrain in ran.retrained:
        _challenger(ws, step, name, retrain, card_folder.parent, reports)
    if ran.alerts:
        reason = "demo: the north site's protocol is here to stay; retrained on the extract that has it"
        acknowledged = services.monitoring.acknowledge(ming, ran.alerts[0].id, reason)
        step("alert acknowledged", f"{acknowledged.rule}: {acknowledged.state} by ming, the reason in the audit trail")
    html = services.monitoring.report(Caller("victor"), name)
    path = card_folder / "monitoring.html"  # beside the model card, whose Monitoring section links to it
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    reports.append(path)
    step(
        "monitoring report",
        f"{path} ({len(html) // 1024} KB, self-contained: charts per month, the alert); "
        "the model card beside it links to it",
    )


def land_extract(data: Any, day: date, raw: Path) -> Any:
    """The world's extract of ``day`` replaces the files in ``raw``, one rename per file, as a nightly
    drop does; returns it. Cut from the same world as the first, it agrees with it on their common past."""
    import os

    from medops.synth import write
    from medops.synth.extracts import on_record

    extract = on_record(data, day)
    landing = raw.with_name(f".{raw.name}.landing")
    shutil.rmtree(landing, ignore_errors=True)
    for written in write(extract, landing, "csv"):
        os.replace(written, raw / written.name)
    landing.rmdir()
    return extract


def simulate_production(
    ws: Workspace, name: str, run: str, first: datetime, months: int, per_month: int, *, seed: int = 7
) -> tuple[str, int, datetime]:
    """Months of production from ``first``: the EHR's requests (patients drawn from ``run``'s own population)
    scored by the production bundle and logged with the times they would have had; from NORTH_PROTOCOL the
    north site draws 40 % fewer labs. Rows the server would refuse (422) are not logged, as it logs none.
    Returns the version's reference, the predictions logged and the end of the last month."""
    import numpy as np

    from medops.registry.predictor import load_model
    from medops.registry.versions import versions
    from medops.serving import prediction_log
    from medops.training import Tracker, stored

    (version,) = [v for v in versions(ws, name) if v.stage == "production"]
    predictor = load_model(ws, (name, version.version))  # verified: signature and every checksum
    tracker = Tracker(ws)
    info = tracker.get(run)
    population = stored.training_frame(tracker, info, stored.recipe(tracker, info))
    rng = np.random.default_rng(seed)
    month, logged = first, 0
    for _ in range(months):
        following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
        rows = population.iloc[rng.integers(0, len(population), per_month)].reset_index(drop=True)
        if month.date() >= NORTH_PROTOCOL:  # the north site draws fewer labs (of those the model accepts missing)
            lost = (rows["home_site"] == "north").to_numpy() & (rng.random(len(rows)) < 0.4)
            rows.loc[lost, [c for c in LABS if c in rows.columns and c not in predictor.schema.required]] = np.nan
        refused = predictor.schema.flagged(rows[predictor.features])  # the server answers these 422, logs nothing
        rows = rows[~refused].reset_index(drop=True)
        features = rows[predictor.features]
        probability = predictor.predict_proba(features)
        step_time = (following - month) / len(rows)
        prediction_log.store(ws)(
            [
                {
                    "id": str(uuid.uuid4()), "at": (month + i * step_time).isoformat(), "model": name,
                    "version": version.version, "bundle_sha256": version.artifact_sha256, "variant": "champion",
                    "request_id": uuid.uuid4().hex, "caller": "pat", "entity": f"patient_id={pid}",
                    "inputs": json.dumps({k: (None if v != v else v) for k, v in row.items()}, default=float),
                    "output": json.dumps({"probability": float(p), "decision": int(p >= predictor.threshold),
                                          "threshold": predictor.threshold}),
                    "explanation": None, "latency_ms": 1.0,
                }
                for i, (pid, row, p) in enumerate(
                    zip(rows["patient_id"], features.to_dict("records"), probability, strict=True)
                )
            ]
        )  # fmt: skip
        logged += len(rows)
        month = following
    return version.ref, logged, month


def _challenger(
    ws: Workspace, step: Callable[[str, str], None], name: str, retrain: Any, reports_dir: Path, reports: list[Path]
) -> None:
    """What the alert started: the pipeline's run on the latest extract, the challenger's evaluation against
    production on the same test rows, the signatures it waits for, and its promotion swapped into a server
    under load."""
    from collections import Counter

    from medops.errors import InvalidTransition
    from medops.evaluation.records import get as get_evaluation
    from medops.registry import approvals, stages
    from medops.services import Services

    services = Services(ws)
    ming = Caller("ming")
    if retrain.run_id is None:
        step("retraining", f"not started: {retrain.error}")
        return
    record = services.pipelines.show(ming, retrain.run_id)
    seconds = (record.ended_at - record.started_at).total_seconds() if record.ended_at else 0.0
    kinds = [s.step.partition(".")[0] for s in record.steps if s.state == "done"]
    made = ", ".join(f"{k} x{kinds.count(k)}" if kinds.count(k) > 1 else k for k in dict.fromkeys(kinds))
    step(
        "retraining",
        f"the rule data_quality says retrain: true: pipeline run {record.short} ({record.trigger[:18]}), "
        f"{record.state} in {seconds:.0f} s: {made}",
    )
    notes = {s.step: s.note for s in record.steps}
    outputs = {s.step: s.outputs or {} for s in record.steps}
    trained = outputs.get("train", {}).get("run")
    if trained:
        from medops.training import Tracker

        made_run = Tracker(ws).get(trained)
        m = made_run.metrics
        training = made_run.inputs[-1]["name"] if made_run.inputs else "the training set"
        step(
            "challenger",
            f"run {made_run.short} on {training} of the latest extract: test AUROC {m['test_auroc']:.3f}, "
            f"Brier {m['test_brier']:.3f}",
        )
    evaluation = outputs.get("evaluate", {}).get("evaluation")
    if evaluation:
        info = get_evaluation(ws, evaluation)
        doc = json.loads(ws.artifacts.read_bytes(info.document))
        c, m = doc["champion"] or {}, doc["metrics"]
        failed = [g["criterion"] for g in info.gates if not g["passed"]]
        out = reports_dir / "challenger"
        out.mkdir(parents=True, exist_ok=True)
        for ref, file in ((info.report, "validation_report.html"), (info.card_markdown, "model_card.md")):
            (out / file).write_bytes(ws.artifacts.read_bytes(ref))
            reports.append(out / file)
        step(
            "evaluate challenger",
            f"AUROC {m['auroc']['value']:.3f} ({m['auroc']['low']:.3f}-{m['auroc']['high']:.3f}); vs production on "
            f"the same {c.get('rows', 0):,} test rows (the {c.get('left_out', 0):,} it was trained on left out) "
            f"AUROC {c.get('difference', 0.0):+.3f} ({c.get('low', 0.0):+.3f} to {c.get('high', 0.0):+.3f}); "
            f"{len(info.gates) - len(failed)}/{len(info.gates)} gates passed"
            + (f" (failed: {'; '.join(failed)})" if failed else "")
            + f"; report {out / 'validation_report.html'}",
        )
    if record.state != "finished":
        step("production untouched", f"the pipeline stopped: {record.error or notes.get('register', '')}")
        return
    version = int(outputs["register"]["version"])
    ref = f"{name}:{version}"
    state = services.registry.approvals(ming, ref)
    asked = "; ".join(f"{', '.join(r.roles)} asked by {r.by}" for r in state.requests) or "none"
    step("approvals requested", f"medops models approvals {ref}: {asked}; production stays on the champion")
    try:
        stages.promote(ws, name, version, "production", actor="ming", reason="demo: before the signatures")
    except InvalidTransition as exc:
        step("promote refused", exc.message)
    for user, role in (("carol", "clinical_reviewer"), ("victor", "validator")):
        decision = approvals.approve(ws, (name, version), user, DEMO_PASSWORD, role)
        step("approve", f"{decision.username} signed {ref} as {decision.role} (Part 11 e-signature)")
    _serve_while(
        ws, step, name,
        lambda: stages.promote(ws, name, version, "production", actor="ming", reason="demo: the retrained challenger"),
        version, f"medops models promote {ref} production",
    )  # fmt: skip
    edges = walk(ws.db, f"pipeline:{record.id}", "both", depth=1)
    produced = Counter(e.dst.partition(":")[0] for e in edges if e.relation == "produced")
    step(
        "lineage",
        f"{record.trigger[:18]} triggered pipeline:{record.short}, which produced "
        + ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in produced.items())
        + f"; medops lineage show {ref} walks back to the source files",
    )


def _serve_one(ws: Workspace, step: Callable[[str, str], None], ref: str, run: str) -> None:
    """The bundle exported, loaded back verified, and one patient scored; a unit error is refused."""
    import tempfile

    from medops.errors import InvalidInput
    from medops.registry.predictor import load_model
    from medops.registry.transfer import export
    from medops.training import Tracker, stored

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.medops"
        export(ws, ref, path, actor="ada")
        predictor = load_model(ws, path)
        size = path.stat().st_size
    tracker = Tracker(ws)
    info = tracker.get(run)
    rows = stored.training_frame(tracker, info, stored.recipe(tracker, info))[predictor.features]
    patient = rows[~predictor.schema.flagged(rows)].iloc[[0]].reset_index(drop=True)
    risk = float(predictor.predict_proba(patient)[0])
    flagged = "flagged for a follow-up call" if risk >= predictor.threshold else "not flagged"
    step(
        "load and predict",
        f"bundle {size:,} bytes, signature and checksums verified; one patient: risk {risk:.3f}, "
        f"threshold {predictor.threshold:.3f}: {flagged}",
    )
    if "temperature_max_30d" in patient.columns and patient["temperature_max_30d"].notna().all():
        wrong = patient.assign(temperature_max_30d=patient["temperature_max_30d"] * 1.8 + 32)
        try:
            predictor.predict_proba(wrong)
        except InvalidInput as exc:
            step("input refused", exc.message)


def _backfill_story(ws: Workspace, store: FeatureStore) -> str:
    """Predicting at admission: the stay under way is on record only at discharge, so its length must not show."""
    stays = pq.read_table(ws.artifacts.local_path(get_dataset(ws.db, "encounters").version)).to_pandas()
    at_admission = stays[["patient_id", "admit_time"]]
    features = ["admissions:last_los_days"]
    guarded = store.get_training_set(at_admission, features, timestamp="admit_time")["last_los_days"]
    leaky = store.get_training_set(at_admission, features, timestamp="admit_time", backfill_guard=False)
    own = int((leaky["last_los_days"].to_numpy() == stays["length_of_stay_days"].to_numpy()).sum())
    before = int(guarded.notna().sum())
    return (
        f"predicting at admission, {own:,} of {len(stays):,} rows would see their own stay's length without the "
        f"guard; with it (the default) {before:,} see a previous stay's, the rest none"
    )


def _tamper_state(home: Path, copy: Path, step: Callable[[str, str], None]) -> list[str]:
    """Grant a role in SQL in a copy of the database, leaving the trail alone, and catch it."""
    shutil.copyfile(home / "medops.db", copy)
    con = sqlite3.connect(copy)
    con.execute("INSERT INTO user_roles (user_id, role) SELECT id, 'admin' FROM users WHERE username = 'alice'")
    con.commit()
    con.close()
    db = Database(f"sqlite:///{copy}")
    try:
        named = [f"{p.entity_type}:{p.entity_id}" for p in check_state(db).problems]
    finally:
        db.dispose()
    step(
        "state tamper test",
        f"granted alice admin in SQL in a copy: verify --state names {', '.join(named)}" if named else "NOT caught",
    )
    return named


def _tamper_copy(home: Path, copy: Path, step: Callable[[str, str], None]) -> int | None:
    """Alter one event in a copy of the database the way an intruder would, and catch it."""
    shutil.copyfile(home / "medops.db", copy)
    con = sqlite3.connect(copy)
    con.execute("DROP TRIGGER audit_events_no_update")
    con.execute("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 5")
    con.commit()
    con.close()
    db = Database(f"sqlite:///{copy}")
    try:
        problem = verify_chain(db).problem
    finally:
        db.dispose()
    at = problem.seq if problem else None
    step(
        "tamper test",
        f"edited event 5 in a copy: verify reports {problem.kind} at event {at}" if problem else "NOT caught",
    )
    return at
