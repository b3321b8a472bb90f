"""Batch scoring: the same numbers as row-by-row scoring, in bounded chunks, with lineage and an audit event."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.audit.query import AuditFilter, list_events
from medops.caller import Caller
from medops.errors import Conflict, InvalidInput, PermissionDenied
from medops.registry import versions
from medops.registry.predictor import load_model
from medops.services import Services
from medops.serving import batch
from medops.store.lineage import walk
from medops.workspace import Workspace
from tests.factories import cohort_rows, log_in, put, run

ALICE = Caller("alice")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batch_equals_row_by_row_in_bounded_chunks(
    scored: Workspace, tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = cohort_rows(1000)
    source = tmp_path / f"in{suffix}"
    rows.to_parquet(source) if suffix == ".parquet" else rows.to_csv(source, index=False)
    seen: list[int] = []
    original = batch.read_chunks

    def spy(src: batch.ScoreInput, chunk_rows: int, columns: list[str] | None = None):  # type: ignore[no-untyped-def]
        for chunk in original(src, chunk_rows, columns):
            assert "patient_id" not in chunk.schema.names  # an identifier the model doesn't use is never read
            seen.append(chunk.num_rows)
            yield chunk

    monkeypatch.setattr(batch, "read_chunks", spy)
    serving = Services(scored).serving
    out = tmp_path / f"out{suffix}"
    progress: list[int] = []
    result = serving.score(
        ALICE, "readmission:1", serving.score_input(str(source)), out, chunk_rows=128, on_chunk=progress.append
    )
    assert result.rows == 1000 and result.chunks == 8 and len(seen) == 8 and max(seen) <= 128
    assert progress == seen
    got = pq.read_table(out).to_pandas() if suffix == ".parquet" else pd.read_csv(out)
    predictor = load_model(scored, "readmission:1")
    one_by_one = np.array([predictor.predict_proba(rows.iloc[[i]])[0] for i in range(len(rows))])
    assert np.allclose(got["probability"].to_numpy(), one_by_one, rtol=0, atol=1e-12)
    assert list(got["decision"]) == list((one_by_one >= predictor.threshold).astype(int))
    assert list(got["row"]) == list(range(1000))
    sha = versions.get(scored, "readmission", 1).artifact_sha256
    assert set(got["bundle_sha256"]) == {sha} and set(got["model"]) == {"readmission"} and set(got["version"]) == {1}
    # a file's columns may hold raw identifiers: none is copied
    assert "patient_id" not in got.columns and "sex" not in got.columns


def test_lineage_and_audit_are_recorded(scored: Workspace, tmp_path: Path) -> None:
    frame = cohort_rows(300)
    put(scored, tmp_path, "admissions", pa.Table.from_pandas(frame, preserve_index=False))
    serving = Services(scored).serving
    source = serving.score_input("admissions")
    assert source.dataset is not None and source.rows == 300
    out = tmp_path / "preds.parquet"
    result = serving.score(ALICE, "readmission:1", source, out, keep=["patient_id"], reason="monthly run")
    got = pq.read_table(out).to_pandas()
    assert list(got["patient_id"]) == list(frame["patient_id"])  # a dataset's (de-identified) column, kept on request
    up = {(e.src, e.relation) for e in walk(scored.db, result.node, "up", depth=1)}
    assert up == {(source.node, "scored_as"), (versions.version_node("readmission", 1), "predicted")}
    events = list_events(scored.db, AuditFilter(action="predictions.score"))
    assert len(events) == 1
    event = events[0]
    assert (event.actor, event.entity_type, event.entity_id, event.reason) == (
        "alice",
        "predictions",
        result.output_sha256,
        "monthly run",
    )
    assert event.after["rows"] == 300 and event.after["bundle_sha256"] == result.bundle_sha256
    assert event.after["input"] == source.node


def test_refusals(scored: Workspace, tmp_path: Path) -> None:
    rows = cohort_rows(50)
    source_path = tmp_path / "in.parquet"
    rows.to_parquet(source_path)
    serving = Services(scored).serving
    source = serving.score_input(str(source_path))
    with pytest.raises(InvalidInput, match="from a dataset only"):
        serving.score(ALICE, "readmission:1", source, tmp_path / "a.parquet", keep=["patient_id"])
    with pytest.raises(PermissionDenied):
        serving.score(Caller("victor"), "readmission:1", source, tmp_path / "b.parquet")
    out = tmp_path / "c.parquet"
    serving.score(ALICE, "readmission:1", source, out)
    with pytest.raises(Conflict):
        serving.score(ALICE, "readmission:1", source, out)
    bad = rows.copy()
    bad.loc[10, "age"] = 6000  # months where years are expected: outside the trained range
    bad.to_parquet(source_path)
    with pytest.raises(InvalidInput, match="outside what the model was trained on"):
        serving.score(ALICE, "readmission:1", serving.score_input(str(source_path)), tmp_path / "d.parquet")
    assert not (tmp_path / "d.parquet").exists()  # no partial prediction file
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    with pytest.raises(Exception, match="no production version"):
        serving.score(ALICE, "readmission", source, tmp_path / "e.parquet")


def test_the_command(
    scored: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(scored.settings.home))
    source = tmp_path / "in.csv"
    cohort_rows(40).to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    code, _, err = run(["score", "readmission:1", "--input", str(source), "--output", str(out)], capsys)
    assert code != 0 and "needs you to log in" in err and not out.exists()  # a change needs a credential
    log_in(scored, "alice")
    code, stdout, err = run(["score", "readmission:1", "--input", str(source), "--output", str(out), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["rows"] == 40 and doc["model"] == "readmission" and Path(doc["output"]) == out
    code, stdout, err = run(["lineage", "show", doc["predictions"][:24], "--json"], capsys)
    assert code == 0, err
    assert "model:readmission:1" in stdout and doc["input"] in stdout
    code, _, err = run(
        ["score", "readmission:1", "--input", str(tmp_path / "none.parquet"), "--output", "x.csv"], capsys
    )
    assert code != 0 and "does not exist" in err and "Traceback" not in err


def test_an_empty_input_gives_an_empty_prediction_file(scored: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "empty.parquet"
    cohort_rows(5).head(0).to_parquet(source)
    serving = Services(scored).serving
    out = tmp_path / "out.parquet"
    result = serving.score(ALICE, "readmission:1", serving.score_input(str(source)), out)
    assert result.rows == 0
    table = pq.read_table(out)
    assert table.num_rows == 0 and {"row", "probability", "decision", "bundle_sha256"} <= set(table.column_names)


def test_a_missing_feature_is_named(scored: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    cohort_rows(20).drop(columns="los").to_csv(source, index=False)
    serving = Services(scored).serving
    with pytest.raises(InvalidInput, match="input has no column 'los'"):
        serving.score(ALICE, "readmission:1", serving.score_input(str(source)), tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_a_chunk_refused_or_a_write_failed_while_another_is_written_leaves_no_file(
    scored: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chunks are written on a thread while the next is scored: a failure on either side stops both
    rows = cohort_rows(1000)
    rows.loc[900, "age"] = 6000
    source_path = tmp_path / "in.parquet"
    rows.to_parquet(source_path)
    serving = Services(scored).serving
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidInput, match="input rows 896 to 999"):
        serving.score(ALICE, "readmission:1", serving.score_input(str(source_path)), out, chunk_rows=128)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    rows.loc[900, "age"] = 60
    rows.to_parquet(source_path)
    original = batch.PredictionWriter.write
    calls: list[int] = []

    def failing(self: batch.PredictionWriter, *args: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(batch.PredictionWriter, "write", failing)
    with pytest.raises(OSError, match="No space left"):
        serving.score(ALICE, "readmission:1", serving.score_input(str(source_path)), out, chunk_rows=128)
    assert len(calls) in (3, 4)  # the failure surfaces at the next chunk's hand-over at the latest
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
