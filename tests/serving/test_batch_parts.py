"""Batch scoring on a Dask cluster: partitions scored by workers give the local file byte for byte, with the
same lineage and audit event; a worker verifies the bundle it is sent before it builds a model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.audit.query import AuditFilter, list_events
from medops.caller import Caller
from medops.errors import IntegrityError, InvalidInput
from medops.registry import versions
from medops.registry.predictor import load_model
from medops.registry.transfer import trusted_keys
from medops.services import Services
from medops.serving import batch_parts
from medops.serving.batch import ScoreInput, ScoreResult, file_input
from medops.store.lineage import walk
from medops.workspace import Workspace
from tests.factories import cohort_rows, log_in, put, run

ALICE = Caller("alice")


@pytest.fixture(scope="module")
def dask_url() -> Iterator[str]:
    """A real scheduler with two in-process workers, as the workspace's ``dask://`` executor names one."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0"
    ) as cluster:
        yield "dask://" + cluster.scheduler_address.removeprefix("tcp://")


def _score(ws: Workspace, source: ScoreInput, out: Path, executor: str, **kw: object) -> tuple[ScoreResult, list[int]]:
    progress: list[int] = []
    serving = Services(ws).serving
    result = serving.score(
        ALICE,
        "readmission:1",
        source,
        out,
        on_chunk=progress.append,
        executor=executor,
        **kw,  # type: ignore[arg-type]
    )
    return result, progress


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_dask_writes_the_local_file_and_equals_row_by_row(
    scored: Workspace, dask_url: str, tmp_path: Path, suffix: str
) -> None:
    rows = cohort_rows(1000)
    source_path = tmp_path / f"in{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source_path, row_group_size=150)
    else:
        rows.to_csv(source_path, index=False)
    source = file_input(source_path)
    local, _ = _score(scored, source, tmp_path / f"local{suffix}", "local", chunk_rows=64)
    dask, progress = _score(scored, source, tmp_path / f"dask{suffix}", dask_url, chunk_rows=64)

    assert local.partitions == 1 and dask.partitions > 1
    assert len(progress) == dask.partitions and sum(progress) == 1000  # one step per finished partition
    assert (tmp_path / f"dask{suffix}").read_bytes() == (tmp_path / f"local{suffix}").read_bytes()
    assert dask.output_sha256 == local.output_sha256 and dask.node == local.node
    assert (dask.rows, dask.positives, dask.flagged) == (local.rows, local.positives, local.flagged)

    got = (
        pq.read_table(tmp_path / f"dask{suffix}").to_pandas()
        if suffix == ".parquet"
        else pd.read_csv(tmp_path / f"dask{suffix}")
    )
    predictor = load_model(scored, "readmission:1")
    one_by_one = np.array([predictor.predict_proba(rows.iloc[[i]])[0] for i in range(len(rows))])
    assert np.allclose(got["probability"].to_numpy(), one_by_one, rtol=0, atol=1e-12)
    assert list(got["decision"]) == list((one_by_one >= predictor.threshold).astype(int))
    assert list(got["row"]) == list(range(1000))
    assert "patient_id" not in got.columns
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file or part folder left


@pytest.mark.slow
def test_a_dataset_on_dask_keeps_columns_and_records_lineage_and_audit(
    scored: Workspace, dask_url: str, tmp_path: Path
) -> None:
    frame = cohort_rows(700)
    put(scored, tmp_path, "admissions", pa.Table.from_pandas(frame, preserve_index=False))
    serving = Services(scored).serving
    source = serving.score_input("admissions")
    parts = batch_parts.partitions(source, 4)
    local, _ = _score(scored, source, tmp_path / "local.parquet", "local", keep=["patient_id"])
    dask, progress = _score(scored, source, tmp_path / "dask.parquet", dask_url, keep=["patient_id"], reason="run")
    assert dask.partitions == len(parts) and sum(progress) == 700
    assert (tmp_path / "dask.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    got = pq.read_table(tmp_path / "dask.parquet").to_pandas()
    assert list(got["patient_id"]) == list(frame["patient_id"])
    up = {(e.src, e.relation) for e in walk(scored.db, dask.node, "up", depth=1)}
    assert up == {(source.node, "scored_as"), (versions.version_node("readmission", 1), "predicted")}
    first, second = list_events(scored.db, AuditFilter(action="predictions.score"))
    assert {first.entity_id, second.entity_id} == {local.output_sha256}
    assert first.after == second.after and first.after["rows"] == 700  # the same event, whoever scored
    assert {first.reason, second.reason} == {None, "run"}


@pytest.mark.slow
@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_dask_local_worker_processes_write_the_local_file(scored: Workspace, tmp_path: Path) -> None:
    """``dask-local``: workers in their own processes, so the task, the bundle and the results are pickled."""
    rows = cohort_rows(400)
    source_path = tmp_path / "in.csv"
    rows.to_csv(source_path, index=False)
    source = file_input(source_path)
    local, _ = _score(scored, source, tmp_path / "local.csv", "local", chunk_rows=100)
    dask, _ = _score(scored, source, tmp_path / "dask.csv", "dask-local", chunk_rows=100)
    assert dask.partitions > 1 and dask.output_sha256 == local.output_sha256


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_refused_row_is_placed_in_the_whole_input(
    scored: Workspace, dask_url: str, tmp_path: Path, suffix: str
) -> None:
    rows = cohort_rows(600)
    rows.loc[517, "age"] = 6000  # months where years are expected: in a late partition
    source_path = tmp_path / f"in{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source_path, row_group_size=100)
    else:
        rows.to_csv(source_path, index=False)
    out = tmp_path / f"out{suffix}"
    with pytest.raises(InvalidInput, match="outside what the model was trained on") as refused:
        _score(scored, file_input(source_path), out, dask_url, chunk_rows=50)
    first, last = (
        int(n.replace(",", "")) for n in refused.value.message.split("input rows ")[1].split(" (")[0].split(" to ")
    )
    assert first <= 517 <= last and last - first < 50
    assert not out.exists() and not list(tmp_path.glob(".*"))
    assert not list_events(scored.db, AuditFilter(action="predictions.score"))


def test_partitions_follow_row_groups_and_line_ends(tmp_path: Path) -> None:
    rows = cohort_rows(1000)
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), parquet, row_group_size=100)
    parts = batch_parts.partitions(file_input(parquet), 4)
    assert [g for p in parts for g in p.row_groups] == list(range(10)) and len(parts) == 4
    assert batch_parts.partitions(file_input(parquet), 40)[-1].row_groups == (9,)  # never more than row groups
    csv = tmp_path / "in.csv"
    rows.to_csv(csv, index=False)
    ranges = [p.byte_range for p in batch_parts.partitions(file_input(csv), 4)]
    data = csv.read_bytes()
    assert len(ranges) == 4 and ranges[0][0] == data.index(b"\n") + 1 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] and data[b[0] - 1 : b[0]] == b"\n" for a, b in zip(ranges, ranges[1:], strict=False))


def test_a_worker_verifies_the_bundle_it_is_sent(scored: Workspace, tmp_path: Path) -> None:
    rows = cohort_rows(50)
    source_path = tmp_path / "in.parquet"
    rows.to_parquet(source_path)
    (part,) = batch_parts.partitions(file_input(source_path), 2)
    sha = versions.get(scored, "readmission", 1).artifact_sha256
    bundle, trusted = scored.artifacts.read_bytes(sha), trusted_keys(scored)
    folder = tmp_path / "parts"
    folder.mkdir()

    ok = batch_parts.score_partition(part, bundle, sha, trusted, [], 20, str(folder))
    assert (ok.error, ok.rows, ok.chunks) == (None, 50, 3) and (folder / part.file_name).exists()

    tampered = bytearray(bundle)
    tampered[len(tampered) // 2] ^= 0x01
    wrong_digest = batch_parts.score_partition(part, bytes(tampered), sha, trusted, [], 20, str(folder))
    assert isinstance(wrong_digest.error, IntegrityError) and "sha256" in wrong_digest.error.message
    import hashlib

    resent = hashlib.sha256(tampered).hexdigest()  # a digest that matches the altered bytes: the bundle still fails
    altered = batch_parts.score_partition(part, bytes(tampered), resent, trusted, [], 20, str(folder))
    assert isinstance(altered.error, IntegrityError) and altered.error.code.startswith("bundle_")
    untrusted = batch_parts.score_partition(part, bundle, sha, {}, [], 20, str(folder))
    assert isinstance(untrusted.error, IntegrityError) and untrusted.error.code == "bundle_key_untrusted"


@pytest.mark.slow
@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_the_command_scores_on_the_executor_it_names(
    scored: Workspace,
    dask_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(scored.settings.home))
    log_in(scored, "alice")
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(cohort_rows(300), preserve_index=False), source, row_group_size=100)
    docs = []
    for name, executor in (("local", "local"), ("dask", dask_url)):
        out = tmp_path / f"{name}.parquet"
        code, stdout, err = run(
            ["score", "readmission:1", "-i", str(source), "-o", str(out), "--executor", executor, "--json"], capsys
        )
        assert code == 0, err
        docs.append(json.loads(stdout))
    local, dask = docs
    assert (local["partitions"], dask["partitions"]) == (1, 3)
    assert dask["output_sha256"] == local["output_sha256"] and dask["predictions"] == local["predictions"]
    code, _, err = run(["score", "readmission:1", "-i", str(source), "-o", "x.parquet", "--executor", "spark"], capsys)
    assert code != 0 and "executor 'spark' is not known" in err and "Traceback" not in err
