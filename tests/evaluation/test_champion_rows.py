"""Non-inferiority compares challenger and champion only on test rows the champion never trained on."""

from __future__ import annotations

import json

from medops.evaluation import evaluate
from medops.evaluation.records import list_for
from medops.training import Tracker
from medops.workspace import Workspace
from tests.factories import DemoRun


def _documents(ws: Workspace) -> list[dict]:
    docs = []
    for run in Tracker(ws).list_runs(limit=None):
        for info in list_for(ws, run.id):
            docs.append(json.loads(ws.artifacts.read_bytes(info.document)))
    return [d for d in docs if d.get("champion")]


def test_a_retrained_challenger_is_compared_on_rows_the_champion_never_saw(demo_run: DemoRun) -> None:
    with Workspace.open(demo_run.result.home) as ws:
        docs = _documents(ws)
        tracker = Tracker(ws)
        same_data = [d for d in docs if d["champion"]["left_out"] == 0]
        retrained = [d for d in docs if d["champion"]["left_out"] > 0]
        assert same_data and retrained  # the tuned model against the baseline; the demo's challenger
        doc = retrained[0]
        champion = doc["champion"]
        ours = evaluate.test_set(tracker, doc["run"]["id"], lambda loc: ".".join(loc))
        theirs = evaluate.test_set(tracker, champion["run"], lambda loc: ".".join(loc))
        key = champion["matched_by"]
        assert {"patient_id", "label_time"} <= set(key)
        trained = set(map(tuple, theirs.train_frame[key].astype(str).to_numpy()))
        seen = [tuple(row) in trained for row in ours.frame[key].astype(str).to_numpy()]
        assert sum(seen) == champion["left_out"] and len(seen) - sum(seen) == champion["rows"]
        gate = next(g for g in doc["gates"] if g["kind"] == "non_inferiority")
        assert f"{champion['left_out']:,} it was trained on left out" in gate["why"]
        # the same training set and split: the champion's training rows are none of the test rows
        tuned = same_data[0]
        assert tuned["champion"]["rows"] == len(
            evaluate.test_set(tracker, tuned["run"]["id"], lambda loc: ".".join(loc)).frame
        )
