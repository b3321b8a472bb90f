"""`medops evaluate` from the project file: validate a run against the project's policy, store the
result, write the validation report and the model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from medops.atomic import write_atomic
from medops.caller import Caller
from medops.data.datasets import get as get_dataset
from medops.errors import ConfigError, InvalidInput
from medops.evaluation.evaluate import evaluate
from medops.evaluation.records import EVALUATE_ROLES, EvaluationInfo, finalize, record
from medops.evaluation.report import render_model_card, render_report
from medops.platform import Platform
from medops.services.projects.project import LoadedProject
from medops.store.lineage import dataset_refs, walk
from medops.training.tracking import Tracker, run_node

REPORT = "validation_report.html"
CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"


@dataclass(frozen=True)
class Evaluated:
    info: EvaluationInfo
    doc: dict[str, Any]
    files: list[Path]
    picked: str | None = None  # how the run was chosen, when the caller named none


def latest_trained(tracker: Tracker, experiment: str) -> str:
    """The newest finished top-level run of the experiment that stored a model and is not a reproduction
    (a reproduction checks a run; it is not the candidate)."""
    for run in tracker.list_runs(experiment=experiment, state="finished", top_level=True, limit=200):
        if "model_sha256" in run.tags and "reproduces" not in run.tags:
            return run.id
    raise InvalidInput(f"no finished training in experiment {experiment!r}", code="no_finished_training")


def evaluate_from_project(
    ws: Platform,
    project: LoadedProject,
    run: str | None = None,
    *,
    champion: str | None = None,
    caller: Caller,
    out: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Evaluated:
    spec = project.spec.evaluate
    if spec is None:
        raise ConfigError(f"{project.path} has no evaluate section", hint="add one (see the readmission template)")
    who = caller.user
    ws.users.require_role(who, "evaluation.record", EVALUATE_ROLES)  # before minutes of work, not after
    tracker = Tracker(ws)
    picked = None
    if run is None:
        experiment = project.spec.train.experiment if project.spec.train else "default"
        run = latest_trained(tracker, experiment)
        picked = f"run {run[:12]}: the newest trained run of experiment {experiment!r} (reproductions skipped)"
    run = tracker.get(run).id
    if champion is None:
        champion = production_run(ws, project.spec.name, run)
    upstream = dict(ref.partition("@")[::2] for ref in dataset_refs(walk(ws.db, run_node(run), "up")))
    meta = project.spec
    doc = evaluate(
        tracker,
        run,
        spec,
        project={
            "name": meta.name,
            "description": meta.description,
            "intended_use": meta.intended_use,
            "population": meta.population,
            "owner": meta.owner,
            "sha256": project.sha256,
        },
        where=project.where,
        source=lambda name: _source(ws, name, upstream.get(name)),
        champion=champion,
        actor=who,
        progress=progress,
        declared_ranges={
            name: (column.range[0], column.range[1])
            for contract in project.contracts.values()
            for name, column in contract.columns.items()
            if column.range is not None
        },
    )
    finalize(ws, doc)  # the report says whether this evaluation can gate production, and hashes the final document
    report = render_report(doc)
    card_markdown, card_html = render_model_card(doc)
    info = record(ws, doc, report, card_markdown, card_html, actor=who)
    files = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in ((REPORT, report), (CARD_MD, card_markdown), (CARD_HTML, card_html)):
            write_atomic(out / name, text)
            files.append(out / name)
    return Evaluated(info, doc, files, picked)


def production_run(ws: Platform, model: str, run: str) -> str | None:
    """The run behind the registered model's production version (named after the project), if any."""
    from sqlalchemy import select

    from medops.store.schema import ModelVersion

    with ws.db.read() as session:
        found = session.scalar(
            select(ModelVersion.run_id).where(ModelVersion.model == model, ModelVersion.stage == "production")
        )
    return found if found is not None and found != run else None


def _source(ws: Platform, name: str, version: str | None) -> pd.DataFrame:
    """A source's dataset, to join subgroup attributes (race, payer...) by the entity: the version the
    run was trained from when the lineage names one, else the latest."""
    info = get_dataset(ws.db, f"{name}@{version}" if version else name)
    return pq.read_table(ws.artifacts.local_path(info.version)).to_pandas()
