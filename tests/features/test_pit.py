"""Point-in-time joins: the leakage traps, TTL, missing entities, duplicates, and a brute-force oracle."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from medops.data.duck import connect
from medops.features.offline import build_feature_table
from medops.features.pit import JoinOptions, join_view
from medops.features.views import Feature, FeatureView

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def view(**kw: Any) -> FeatureView:
    base: dict[str, Any] = {
        "name": "v",
        "entity": "pid",
        "source": "events",
        "timestamp": "t",
        "features": (Feature("value"),),
        "ttl": timedelta(days=30),
    }
    base.update(kw)
    return FeatureView(**base)


def events(rows: list[tuple[str, datetime, float]], created: list[datetime] | None = None) -> pa.Table:
    data: dict[str, Any] = {
        "pid": [r[0] for r in rows],
        "t": pa.array([r[1] for r in rows], pa.timestamp("us", "UTC")),
        "value": [r[2] for r in rows],
    }
    if created is not None:
        data["known"] = pa.array(created, pa.timestamp("us", "UTC"))
    return pa.table(data)


def labels(rows: list[tuple[str | None, datetime]]) -> pa.Table:
    return pa.table(
        {
            "_row": pa.array(range(len(rows)), pa.int64()),
            "pid": pa.array([r[0] for r in rows], pa.string()),
            "event_timestamp": pa.array([r[1] for r in rows], pa.timestamp("us", "UTC")),
        }
    )


def run(v: FeatureView, src: pa.Table, lab: pa.Table, **options: Any) -> list[dict[str, Any]]:
    con = connect()
    try:
        table = build_feature_table(con, v, src)
        return join_view(con, v, lab, table, "pid", JoinOptions(**options)).to_pylist()
    finally:
        con.close()


# --- leakage traps -------------------------------------------------------------------


def test_a_label_before_an_event_never_sees_it() -> None:
    src = events([("a", T0 + DAY, 1.0), ("a", T0 + 5 * DAY, 2.0)])
    out = run(view(), src, labels([("a", T0), ("a", T0 + 3 * DAY)]))
    assert out[0]["value"] is None  # nothing had happened yet
    assert out[1]["value"] == 1.0  # only the first event had


def test_a_value_changed_one_second_after_the_label_is_not_used() -> None:
    src = events([("a", T0, 1.0), ("a", T0 + DAY + SECOND, 99.0)])
    out = run(view(), src, labels([("a", T0 + DAY), ("a", T0 + DAY + SECOND)]))
    assert out[0]["value"] == 1.0
    assert out[1]["value"] == 99.0  # at or before: the event at the label's own second counts


def test_a_backfilled_value_is_not_used_by_default() -> None:
    # Event time two days ago, but written to the source a week after the label time.
    src = events([("a", T0, 1.0), ("a", T0 + 8 * DAY, 2.0)], created=[T0, T0 + 17 * DAY])
    v = view(created="known")
    lab = labels([("a", T0 + 10 * DAY), ("a", T0 + 20 * DAY)])
    guarded = run(v, src, lab)
    assert guarded[0]["value"] == 1.0  # the backfill was not on record at the label time
    assert guarded[1]["value"] == 2.0  # later labels see it
    leaky = run(v, src, lab, backfill_guard=False)
    assert leaky[0]["value"] == 2.0  # proof the trap is real: without the guard it leaks


def test_the_guard_picks_the_latest_event_known_not_the_latest_known() -> None:
    # A late-arriving old event must not displace a newer one that was already known.
    src = events([("a", T0 + 5 * DAY, 5.0), ("a", T0 + 2 * DAY, 2.0)], created=[T0 + 5 * DAY, T0 + 9 * DAY])
    out = run(view(created="known"), src, labels([("a", T0 + 6 * DAY), ("a", T0 + 10 * DAY)]))
    assert [r["value"] for r in out] == [5.0, 5.0]


def test_aggregates_respect_the_label_time_and_the_guard() -> None:
    v = view(
        created="known",
        features=(
            Feature("n", agg="count", window=10 * DAY),
            Feature("total", expr="value", agg="sum", window=10 * DAY),
        ),
    )
    src = events(
        [("a", T0, 1.0), ("a", T0 + 2 * DAY, 2.0), ("a", T0 + 4 * DAY, 4.0), ("a", T0 + 6 * DAY, 8.0)],
        created=[T0, T0 + 2 * DAY, T0 + 30 * DAY, T0 + 6 * DAY],
    )
    out = run(v, src, labels([("a", T0 + 5 * DAY), ("a", T0 + 7 * DAY)]))
    assert (out[0]["n"], out[0]["total"]) == (2, 3.0)  # the row at day 4 is a backfill from day 30
    assert (out[1]["n"], out[1]["total"]) == (3, 11.0)


# --- TTL and missing entities ----------------------------------------------------------


def test_ttl_drops_old_values_and_keeps_the_boundary() -> None:
    src = events([("a", T0, 1.0)])
    out = run(view(ttl=timedelta(days=30)), src, labels([("a", T0 + 30 * DAY), ("a", T0 + 30 * DAY + SECOND)]))
    assert out[0]["value"] == 1.0
    assert out[1]["value"] is None
    assert out[1]["_event_time"] == T0  # the event time still says what was found, and how old


def test_missing_entities_get_missing_values_and_zero_counts() -> None:
    v = view(features=(Feature("value"), Feature("n", agg="count", window=DAY), Feature("d", agg="days_since_last")))
    out = run(v, events([("a", T0, 1.0)]), labels([("zz", T0 + DAY), (None, T0 + DAY)]))
    for row in out:
        assert row["value"] is None and row["d"] is None and row["_event_time"] is None
        assert row["n"] == 0


def test_a_static_view_ignores_time() -> None:
    v = FeatureView(name="s", entity="pid", source="people", features=(Feature("value"),))
    src = pa.table({"pid": ["a", "a"], "value": [1.0, 2.0]})
    out = run(v, src, labels([("a", T0 - 1000 * DAY)]))
    assert out[0]["value"] == 2.0  # the last row of the entity


# --- rows are never lost or merged ------------------------------------------------------


def test_label_rows_sharing_entity_and_time_are_all_kept_in_order() -> None:
    src = events([("a", T0, 1.0), ("b", T0, 2.0)])
    lab = labels([("a", T0 + DAY), ("b", T0 + DAY), ("a", T0 + DAY), ("a", T0 + DAY)])
    out = run(view(), src, lab)
    assert [r["_row"] for r in out] == [0, 1, 2, 3]
    assert [r["value"] for r in out] == [1.0, 2.0, 1.0, 1.0]


def test_events_sharing_a_time_resolve_to_the_later_source_row() -> None:
    src = events([("a", T0, 1.0), ("a", T0, 2.0)])
    assert run(view(), src, labels([("a", T0)]))[0]["value"] == 2.0


# --- an oracle: the same answers as a brute-force loop ------------------------------------


def _oracle(
    rows: list[tuple[str, datetime, float, datetime, int]], label: tuple[str, datetime], v: FeatureView, guard: bool
) -> dict[str, Any]:
    pid, t = label
    usable = [r for r in rows if r[0] == pid and r[1] <= t and (not guard or r[3] <= t)]
    out: dict[str, Any] = {}
    latest = max(usable, key=lambda r: (r[1], r[3], r[4]), default=None)
    ttl = v.ttl or timedelta.max
    out["value"] = latest[2] if latest and t - latest[1] <= ttl else None
    for f in v.aggregates:
        if f.agg == "days_since_last":
            recent = [r for r in usable if t - r[1] <= ttl]
            out[f.name] = (t - max(r[1] for r in recent)).total_seconds() / 86400 if recent else None
            continue
        assert f.window is not None
        window = [r for r in usable if r[1] > t - f.window]
        values = [r[2] for r in window if r[2] > 0.3] if f.filter else [r[2] for r in window]
        if f.agg == "count":
            out[f.name] = len(values)
        elif f.agg == "coverage":
            start = t - f.window
            spans = sorted((max(r[1], start), min(r[1] + timedelta(days=r[2] * 10), t)) for r in usable)
            covered, reach = timedelta(0), start
            for begin, end in spans:  # union of intervals, each overlap counted once
                if end > max(begin, reach):
                    covered += end - max(begin, reach)
                    reach = end
            out[f.name] = covered / f.window
        elif values:
            fn = {"sum": sum, "min": min, "max": max, "mean": lambda xs: sum(xs) / len(xs)}[str(f.agg)]
            out[f.name] = fn(values)
        else:
            out[f.name] = None
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("guard", [True, False])
def test_matches_a_brute_force_oracle(seed: int, guard: bool) -> None:
    rng = random.Random(seed)
    entities = ["a", "b", "c", "d"]
    rows = []
    for i in range(120):
        t = T0 + timedelta(hours=rng.randrange(0, 24 * 60))
        known = t + (timedelta(hours=rng.randrange(1, 24 * 20)) if rng.random() < 0.3 else timedelta(0))
        rows.append((rng.choice(entities), t, round(rng.random(), 3), known, i))
    v = view(
        created="known",
        ttl=timedelta(days=7),
        features=(
            Feature("value"),
            Feature("n", agg="count", window=timedelta(days=5)),
            Feature("hi", expr="value", agg="max", window=timedelta(days=9)),
            Feature("lo", expr="value", agg="min", window=timedelta(days=9), filter="value > 0.3"),
            Feature("avg", expr="value", agg="mean", window=timedelta(days=3)),
            Feature("total", expr="value", agg="sum", window=timedelta(days=20)),
            Feature("since", agg="days_since_last"),
            Feature("cover", expr="value * 10", agg="coverage", window=timedelta(days=6)),
        ),
    )
    src = pa.table(
        {
            "pid": [r[0] for r in rows],
            "t": pa.array([r[1] for r in rows], pa.timestamp("us", "UTC")),
            "value": [r[2] for r in rows],
            "known": pa.array([r[3] for r in rows], pa.timestamp("us", "UTC")),
        }
    )
    lab = [(rng.choice([*entities, "zz"]), T0 + timedelta(hours=rng.randrange(0, 24 * 70))) for _ in range(60)]
    out = run(v, src, labels(lab), backfill_guard=guard)
    for got, label in zip(out, lab, strict=True):
        want = _oracle(rows, label, v, guard)
        for name, expected in want.items():
            value = got[name]
            if name == "cover":
                assert value == pytest.approx(expected, abs=1e-6), (label, name)
            elif expected is None:
                assert value is None, (label, name, value)
            elif isinstance(expected, float):
                assert value is not None and math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9), (label, name)
            else:
                assert value == expected, (label, name)


def test_feature_sql_can_not_read_files(tmp_path: Any) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("x\n1\n")
    from medops.features.views import FeatureViewError

    v = view(features=(Feature("leak", expr=f"(SELECT count(*) FROM read_csv('{secret}'))"),))
    with pytest.raises(FeatureViewError, match="view v, features.leak: .*disabled"):
        run(v, events([("a", T0, 1.0)]), labels([("a", T0)]))


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (Feature("n", agg="count"), "features.n: window: required for agg count"),
        (Feature("n", agg="median", window=DAY), "features.n: unknown agg 'median'"),
        (Feature("s", agg="sum", window=DAY), "features.s: expr: required for agg sum"),
        (Feature("x", filter="value > 1"), "features.x: window and filter need an agg"),
        (Feature("entity_id"), "features.entity_id: a feature name is"),
        (Feature("x", expr="1", fn=lambda f: f), "features.x: give expr or a Python function, not both"),
    ],
)
def test_python_views_are_checked_like_yaml_ones(feature: Feature, message: str) -> None:
    from medops.features.views import FeatureViewError

    with pytest.raises(FeatureViewError, match=f"view v, {message}"):
        view(features=(feature,))


def test_partitioned_joins_equal_the_single_join_whatever_the_id_type(tmp_path: Any) -> None:
    from medops.features.executor import LocalExecutor
    from medops.features.offline import write_table
    from medops.features.partitions import join_partitioned, table_partitioned

    rng = random.Random(3)
    rows = [(str(rng.randrange(40)), T0 + timedelta(hours=rng.randrange(2000)), rng.random()) for _ in range(400)]
    v = view(features=(Feature("value"), Feature("n", agg="count", window=timedelta(days=20))))
    source = tmp_path / "src.parquet"
    write_table(events(rows), source)
    whole = table_partitioned(LocalExecutor(), v, source)
    assert table_partitioned(LocalExecutor(partitions=3), v, source).equals(whole)
    feats = tmp_path / "feats.parquet"
    write_table(whole, feats)
    keys = pa.table(
        {
            "_row": pa.array(range(200), pa.int64()),
            "event_timestamp": pa.array(
                [T0 + timedelta(hours=rng.randrange(2200)) for _ in range(200)], pa.timestamp("us", "UTC")
            ),
            "pid": pa.array([rng.randrange(45) for _ in range(200)], pa.int64()),  # integer ids in the labels
        }
    )
    one = join_partitioned(LocalExecutor(), v, keys, feats, "pid", JoinOptions())
    three = join_partitioned(LocalExecutor(partitions=3), v, keys, feats, "pid", JoinOptions())
    assert three.equals(one)
    assert one.column("value").null_count < 200  # the integer ids did match the text ids
