"""Rows are checked field by field against the bundle's input schema; no error carries the value sent."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from medops.errors import InvalidInput
from medops.serving.example import example_row
from medops.serving.models import ServeSpec, parse_spec
from medops.serving.validation import DuplicateField, RowsInvalid, check_rows, parse_json

SCHEMA: dict[str, Any] = {
    "features": [
        {"name": "age", "required": True, "type": "number", "min": 18.0, "max": 95.0},
        {"name": "los", "required": False, "type": "number", "min": 0.04, "max": 31.7},
        {"name": "payer", "required": True, "type": "category", "categories": ["medicaid", "medicare", "private"]},
    ],
    "out_of_range": "reject",
}
SECRET_NUMBER = 123456.789
SECRET_TEXT = "Jane-Doe-MRN-0042"


def _codes(rows: list[Any], schema: dict[str, Any] = SCHEMA) -> list[tuple[int, str, str]]:
    with pytest.raises(RowsInvalid) as caught:
        check_rows(rows, schema)
    text = json.dumps([e.to_json() for e in caught.value.errors]) + str(caught.value)
    assert SECRET_TEXT not in text and "123456" not in text, "an error echoed a submitted value"
    return [(e.row, e.field, e.code) for e in caught.value.errors]


GOOD = {"age": 60, "los": 3.5, "payer": "medicare"}


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"age": None}, "age", "missing_field"),
        ({"age": SECRET_TEXT}, "age", "not_a_number"),
        ({"age": [SECRET_NUMBER]}, "age", "wrong_type"),
        ({"age": True}, "age", "wrong_type"),
        ({"age": math.nan}, "age", "not_finite"),
        ({"los": math.inf}, "los", "not_finite"),
        ({"los": 10**400}, "los", "not_finite"),  # JSON allows it; no float holds it
        ({"age": SECRET_NUMBER}, "age", "out_of_range"),
        ({"payer": SECRET_TEXT}, "payer", "unseen_category"),
        ({"payer": {"x": SECRET_TEXT}}, "payer", "wrong_type"),
        ({"temperature_f": SECRET_NUMBER}, "temperature_f", "unknown_field"),
    ],
)
def test_each_problem_is_named_by_row_field_and_code(change: dict[str, Any], field: str, code: str) -> None:
    row = {**GOOD, **change}
    assert _codes([GOOD, row]) == [(1, field, code)]  # an unknown field is named: a name is not a patient's value


def test_a_missing_required_field_and_an_absent_optional_one() -> None:
    assert _codes([{"los": 2.0, "payer": "private"}]) == [(0, "age", "missing_field")]
    checked = check_rows([{"age": 40, "payer": "private"}], SCHEMA)
    assert math.isnan(checked.columns["los"][0])


def test_the_flag_policy_scores_out_of_range_and_names_the_fields() -> None:
    flagging = {**SCHEMA, "out_of_range": "flag"}
    checked = check_rows([GOOD, {**GOOD, "age": 120, "payer": "self-pay"}], flagging)
    assert checked.flags == [[], ["age", "payer"]]
    assert _codes([{**GOOD, "age": "old"}], flagging) == [(0, "age", "not_a_number")]  # a wrong type is never scored


def test_a_row_that_is_not_an_object_is_refused() -> None:
    assert _codes([[1, 2, 3]]) == [(0, "", "wrong_type")]


def test_the_example_passes_the_checks() -> None:
    example = example_row(SCHEMA)
    assert example == {"age": 56, "los": round((0.04 + 31.7) / 2, 4), "payer": "medicaid"}
    assert check_rows([example], SCHEMA).rows == 1


def test_serving_specs() -> None:
    assert parse_spec("readmission") == ServeSpec("readmission")
    assert parse_spec("readmission@champion") == ServeSpec("readmission", alias="champion")
    assert parse_spec("readmission:3") == ServeSpec("readmission", version=3)
    for bad in ("Readmission", "readmission:0", "readmission:x", "readmission@", "a b"):
        with pytest.raises(InvalidInput):
            parse_spec(bad)


@pytest.mark.parametrize(
    "body",
    [
        b'{"age": 71, "site": "s\\u00fcd"}',
        '{"age": 71, "site": "süd"}'.encode(),
        b'\xef\xbb\xbf[{"age": 71}]',
        '{"age": 71}'.encode("utf-16"),
        '{"age": 71}'.encode("utf-32"),
        b'{"age": NaN, "los": Infinity}',
    ],
    ids=["ascii", "utf-8", "bom", "utf-16", "utf-32", "nan"],
)
def test_a_body_is_read_as_json_loads_reads_it(body: bytes) -> None:
    # NaN compares unequal to itself; its text does not
    assert json.dumps(parse_json(body)) == json.dumps(json.loads(body))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"age": 71, "age": 72}', "age"),
        (b'[{"age": 71}, {"site": "a", "age": 1, "site": "b"}]', "site"),
        (b'{"a": {"b": 1, "b": 2}}', "b"),
    ],
)
def test_a_field_named_twice_is_refused_with_its_name(body: bytes, field: str) -> None:
    with pytest.raises(DuplicateField) as refused:
        parse_json(body)
    assert refused.value.field == field and repr(field) in str(refused.value)
    assert "72" not in str(refused.value)  # never a value


def test_a_body_that_is_not_json_is_refused() -> None:
    for body in (b"{not json", b"\xff\xfe\x00", b""):
        with pytest.raises(ValueError):
            parse_json(body)
