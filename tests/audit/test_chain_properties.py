"""Property tests: any single edit to a chain is found, at or next to the edited event."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medops.audit.chain import GENESIS, canonical_json, event_hash
from medops.audit.verify import verify_rows

Row = list


def _chain(n: int) -> list[Row]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = [
            seq,
            f"2026-01-01T00:00:{seq % 60:02d}.000000Z",
            "u",
            "a",
            "t",
            str(seq),
            None,
            canonical_json({"v": seq}),
            None,
        ]
        digest = event_hash(prev, *fields)
        rows.append([*fields, prev, digest])
        prev = digest
    return rows


@given(n=st.integers(2, 40), data=st.data())
@settings(max_examples=200, deadline=None)
def test_any_single_edit_is_detected(n: int, data: st.DataObject) -> None:
    rows = _chain(n)
    assert verify_rows(rows).ok
    k = data.draw(st.integers(1, n))
    op = data.draw(st.sampled_from(["alter", "delete", "swap", "insert"]))
    if op == "alter":
        column = data.draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8]))
        rows[k - 1][column] = "tampered"
        expected = {k}
    elif op == "delete":
        if k == n:  # a dropped tail is what anchoring (checkpoints) is for, not the chain
            return
        del rows[k - 1]
        expected = {k}
    elif op == "swap":
        if k == n:
            return
        rows[k - 1][0], rows[k][0] = rows[k][0], rows[k - 1][0]
        expected = {k}
    else:
        if k == n:  # a well-formed append at the head is what a legitimate writer does, too
            return
        forged = [k + 1, "2026-01-01T00:00:00.000000Z", "x", "a", "t", "f", None, None, None]
        for r in rows[k:]:
            r[0] += 1
        rows.insert(k, [*forged, rows[k - 1][10], event_hash(rows[k - 1][10], *forged)])
        expected = {k + 1}
    result = verify_rows(rows)
    assert not result.ok
    assert result.problem is not None and result.problem.seq in expected, (op, k, result.problem)
