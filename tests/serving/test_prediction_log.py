"""A request kept as one spool line: what the drain splits it into is what a record per row would hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from medops.serving.prediction_log import (
    PredictionFilter,
    _json,
    _output,
    _rows,
    count,
    expand,
    get,
    parse_line,
    request_line,
    store,
)
from medops.store.schema import Prediction
from medops.workspace import Workspace

SHA = "ab" * 32


def _answer(n: int, **extra: Any) -> bytes:
    rows = [
        {
            "prediction_id": f"00000000-0000-4000-8000-00000000000{i}",
            "probability": 0.25 + i / 10,
            "decision": 0,
            "threshold": 0.3,
            "model": "readmission",
            "version": 2,
            "bundle_sha256": SHA,
            **extra,
        }
        for i in range(n)
    ]
    return json.dumps({"request_id": "r1", "predictions": rows}, separators=(",", ":")).encode()


def _line(body: bytes, answer: bytes) -> bytes | None:
    return request_line(body, answer, caller="pat", request_id="r1", latency_ms=1.23456, at="2026-12-04T01:00:00Z")


def test_a_request_line_expands_to_the_records_of_its_rows() -> None:
    rows = [{"age": 71, "site": "north", "creatinine": None}, {"age": 92.5, "site": "süd", "creatinine": 1.1}]
    line = _line(json.dumps(rows).encode(), _answer(2, out_of_range=["age"]))
    assert line is not None and line.endswith(b"\n") and line.count(b"\n") == 1
    records = expand(parse_line(line[:-1]))  # a segment's line, as the drain hands it over
    assert records == expand(json.loads(line))  # what the drain reads is what the line says as JSON
    assert [json.loads(r["inputs"]) for r in records] == rows
    assert [r["id"] for r in records] == [
        "00000000-0000-4000-8000-000000000000",
        "00000000-0000-4000-8000-000000000001",
    ]
    assert json.loads(records[1]["output"]) == {
        "probability": 0.35,
        "decision": 0,
        "threshold": 0.3,
        "out_of_range": ["age"],
    }
    assert {(r["model"], r["version"], r["bundle_sha256"], r["variant"], r["caller"]) for r in records} == {
        ("readmission", 2, SHA, "champion", "pat")
    }
    assert all(r["latency_ms"] == 1.235 and r["entity"] is None and r["explanation"] is None for r in records)
    assert len(_rows([line[:-1]], sqlite=True)) == 2  # a segment's line, as the drain hands it over


def test_one_row_sent_as_an_object_and_pretty_printed_bodies_stay_on_one_line() -> None:
    body = json.dumps({"age": 71, "site": "süd", "note": "a\u2028b"}, indent=2, ensure_ascii=False).encode()
    line = _line(body, _answer(1))
    assert line is not None and line.count(b"\n") == 1
    (record,) = expand(parse_line(line[:-1]))
    # one row's text is kept as sent (its newlines made spaces), not decoded and encoded again
    assert record["inputs"] == body.decode().replace("\n", " ")
    assert json.loads(record["inputs"]) == {"age": 71, "site": "süd", "note": "a\u2028b"}


@pytest.mark.parametrize(
    "answer",
    [
        {"probability": 0.0950483086234486, "decision": 0, "threshold": 0.12250597972415536, "model": "m"},
        {"probability": 1e-17, "decision": 1, "threshold": 0.5},
        {"probability": 0.7, "decision": 1, "threshold": 0.5, "out_of_range": ["age"]},
        {"probability": 0.7, "decision": True, "threshold": 0.5},
        {"probability": 1, "decision": 1, "threshold": 0.5},
        {"probability": 0.7, "decision": 1, "threshold": 0.5, "features": {"hba1c": 6.1}, "variant": "canary"},
    ],
)
def test_an_answers_output_text_is_what_the_encoder_writes(answer: dict[str, Any]) -> None:
    expected = _json(
        {k: answer[k] for k in ("probability", "decision", "threshold", "out_of_range", "features") if k in answer}
    )
    assert _output(answer) == expected


def test_an_answer_with_a_number_json_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError):
        _output({"probability": float("nan"), "decision": 0, "threshold": 0.5})


def test_a_request_line_of_an_earlier_release_still_drains() -> None:
    # rows before the answer, no body length: a spool left by a server of the release before
    line = (
        b'{"at":"2026-12-04T01:00:00Z","request_id":"r1","caller":"pat","latency_ms":1.235,"rows":{"age": 71},'
        b'"answer":' + _answer(1) + b"}"
    )
    (record,) = expand(parse_line(line))
    assert json.loads(record["inputs"]) == {"age": 71} and record["caller"] == "pat"
    assert len(_rows([line], sqlite=True)) == 1


@pytest.mark.parametrize("size", [b"999", b"-3", b"x", b"0"])
def test_a_request_line_whose_body_length_is_wrong_is_skipped(size: bytes, caplog: pytest.LogCaptureFixture) -> None:
    line = (_line(b'{"age": 71}', _answer(1)) or b"")[:-1]
    edited = line.replace(b'{"body_bytes":11,', b'{"body_bytes":' + size + b",", 1)
    assert edited != line
    assert _rows([edited], sqlite=True) == []
    assert "spooled line 1 is not a prediction record" in caplog.text


@pytest.mark.parametrize(
    "body",
    [b'\xef\xbb\xbf{"age": 71}', '{"age": 71}'.encode("utf-16"), b"", b'{"age":\x00 71}'],
    ids=["bom", "utf-16", "empty", "nul"],
)
def test_bytes_that_cannot_stand_in_a_line_are_left_to_the_per_row_records(body: bytes) -> None:
    assert _line(body, _answer(1)) is None


def test_a_line_whose_rows_and_answers_differ_is_skipped_whole(caplog: pytest.LogCaptureFixture) -> None:
    line = json.loads(_line(b'[{"age": 71}, {"age": 72}]', _answer(2)) or b"")
    line["answer"]["predictions"].pop()
    assert _rows([line], sqlite=True) == []
    assert "not a prediction record" in caplog.text


@pytest.mark.parametrize("sqlite", [True, False], ids=["sqlite", "postgresql"])
@pytest.mark.parametrize("at", ["2026-13-45T99:99:99.999999Z", "2026-12-05T04:00:00.1234x6Z", "yesterday", 17])
def test_a_line_with_an_impossible_time_is_skipped(sqlite: bool, at: Any, caplog: pytest.LogCaptureFixture) -> None:
    # an edited or foreign spool file: its time would otherwise be stored as text no reader could read back
    line = json.loads(_line(b'{"age": 71}', _answer(1)) or b"")
    assert len(_rows([line], sqlite=sqlite)) == 1
    assert _rows([{**line, "at": at}], sqlite=sqlite) == []
    assert "not a prediction record" in caplog.text


def test_a_body_cannot_forge_fields_of_its_line() -> None:
    """The body is one whole JSON value inside the line: text in it that looks like the line's own fields
    stays text, and the caller, model and ids come from the server's side."""
    forged = ',"caller":"admin","answer":{"request_id":"x","predictions":[]}}\n{"body_bytes":3,"rows":'
    body = json.dumps({"site": forged, "age": 71}).encode()
    line = _line(body, _answer(1))
    assert line is not None and line.count(b"\n") == 1
    (record,) = expand(parse_line(line[:-1]))
    assert record["caller"] == "pat" and record["model"] == "readmission"
    assert json.loads(record["inputs"]) == {"site": forged, "age": 71}


@pytest.mark.parametrize(
    ("request_id", "caller", "latency_ms"),
    [("r1", "pat", 1.23456), ('a "quoted"\nid\\', "zoë", 0.0), ("\u2028\x00", "x" * 64, 12345.6789)],
)
def test_a_request_lines_head_is_the_json_of_its_fields(request_id: str, caller: str, latency_ms: float) -> None:
    # the head is written without json.dumps (every request pays for it): it must read back as json.dumps wrote it
    line = request_line(
        b"{}", _answer(1), caller=caller, request_id=request_id, latency_ms=latency_ms, at="2026-12-05T04:00:00.000001Z"
    )
    assert line is not None
    read = json.loads(line)
    assert (read["at"], read["request_id"], read["caller"], read["latency_ms"]) == (
        "2026-12-05T04:00:00.000001Z",
        request_id,
        caller,
        round(latency_ms, 3),
    )
    head = {"body_bytes": 2, "at": read["at"], "request_id": request_id, "caller": caller}
    head["latency_ms"] = round(latency_ms, 3)
    assert line.startswith(json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"answer":')
    assert line.endswith(b',"rows":{}}\n')


def test_the_drain_stores_what_the_orm_would_and_skips_what_it_holds(workspace: Workspace) -> None:
    # the drain hands the driver values already as the column types make them: the same text or time as an
    # ORM insert, so the time windows of monitoring and `predictions list --since` find both alike
    answer = json.loads(_answer(1))["predictions"][0]
    body = json.dumps({"age": 71}).encode()
    line = request_line(body, json.dumps({"request_id": "r1", "predictions": [answer]}).encode(), caller="pat",
                        request_id="r1", latency_ms=2.5, at="2026-12-05T04:00:00.000001Z")  # fmt: skip
    assert line is not None
    odd = {**expand(json.loads(line))[0], "id": "odd", "at": "2026-12-05T05:00:00.5+01:00"}  # not to_iso's form
    sink = store(workspace)
    sink([json.loads(line), odd])
    sink([json.loads(line)])  # drained twice (a crash before the segment's deletion): kept once
    with workspace.db.write() as session:
        session.add(Prediction(**{**_stored(expand(json.loads(line))[0]), "id": "orm"}))
    kept = get(workspace, answer["prediction_id"])
    assert kept.at == datetime(2026, 12, 5, 4, 0, 0, 1, tzinfo=UTC) and kept.inputs == {"age": 71}
    assert (kept.caller, kept.request_id, kept.latency_ms, kept.output["probability"]) == ("pat", "r1", 2.5, 0.25)
    assert get(workspace, "odd").at == datetime(2026, 12, 5, 4, 0, 0, 500000, tzinfo=UTC)
    with workspace.db.read() as session:
        stored = dict(session.execute(text("SELECT id, CAST(at AS TEXT) FROM predictions")).all())
    assert len(stored) == 3 and stored[answer["prediction_id"]] == stored["orm"]
    window = PredictionFilter(since=datetime(2026, 12, 5, 4, 0, 0, 1, tzinfo=UTC))
    assert count(workspace, window) == 3 and count(workspace, PredictionFilter(model="readmission", version=2)) == 3


def _stored(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "at": datetime.fromisoformat(record["at"])}
