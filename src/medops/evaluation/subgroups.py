"""Subgroups: the declared attributes' values per test row, their intersections, and the strata.

Every row falls in one stratum: one combination of every attribute's value. A group (one
attribute's value, or one value per attribute of an intersection) is a set of strata, so
the bootstrap draws strata once and sums them into any group. A missing attribute value is
its own group, named "missing", never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medops.errors import InvalidInput
from medops.evaluation.spec import AttributeSpec, SubgroupsSpec

OVERALL = ("overall", "all")
MISSING = "missing"


@dataclass(frozen=True)
class GroupSet:
    names: list[tuple[str, str]]  # (attribute or "a × b", value or "v × w"); row 0 is the overall population
    membership: np.ndarray  # (groups, strata) bool
    strata: np.ndarray  # (rows,) stratum of each test row
    kinds: list[tuple[str, ...]]  # the attributes each group is defined by; () for the overall population


def band_labels(edges: list[float]) -> list[str]:
    labels = [f"<{edges[0]:g}"]
    labels += [f"{lo:g}–<{hi:g}" for lo, hi in zip(edges, edges[1:], strict=False)]
    return [*labels, f"≥{edges[-1]:g}"]


def attribute_values(
    frame: pd.DataFrame,
    spec: SubgroupsSpec,
    *,
    entity: str | None,
    source: Callable[[str], pd.DataFrame],
    where: Callable[[tuple[str, ...]], str],
) -> dict[str, pd.Series]:
    """Each attribute's value per row, as text; ``where`` names the project line of a bad attribute."""
    out: dict[str, pd.Series] = {}
    for name, attr in spec.attributes.items():
        raw = _raw(frame, name, attr, entity=entity, source=source, where=where)
        out[name] = _labels(raw, attr, where(("evaluate", "subgroups", "attributes", name)))
    return out


def _raw(
    frame: pd.DataFrame,
    name: str,
    attr: AttributeSpec,
    *,
    entity: str | None,
    source: Callable[[str], pd.DataFrame],
    where: Callable[[tuple[str, ...]], str],
) -> pd.Series:
    column = attr.column or name
    at = where(("evaluate", "subgroups", "attributes", name))
    if attr.source is None:
        if column not in frame.columns:
            raise InvalidInput(
                f"{at}: the test set has no column {column!r}",
                hint=f"name a test-set column, or a source to join by the entity (columns: {', '.join(frame.columns)})",
            )
        return frame[column].reset_index(drop=True)
    if entity is None or entity not in frame.columns:
        raise InvalidInput(f"{at}: joining {attr.source!r} needs the split's entity column in the test set")
    table = source(attr.source)
    for needed in (entity, column):
        if needed not in table.columns:
            raise InvalidInput(f"{at}: source {attr.source!r} has no column {needed!r}")
    lookup = table.drop_duplicates(entity, keep="last").set_index(entity)[column]
    return frame[entity].map(lookup).reset_index(drop=True)


def _labels(raw: pd.Series, attr: AttributeSpec, at: str) -> pd.Series:
    if attr.bins is None:
        text = raw.astype("string")
        return text.fillna(MISSING).astype(str)
    numbers = pd.to_numeric(raw, errors="coerce")
    if numbers.notna().sum() < raw.notna().sum():
        raise InvalidInput(f"{at}: bins need numbers; the column holds text")
    codes = np.searchsorted(np.asarray(attr.bins, dtype=float), numbers.to_numpy(dtype=float), side="right")
    labels = np.asarray(band_labels(attr.bins), dtype=object)[codes]
    return pd.Series(np.where(numbers.isna(), MISSING, labels), dtype=object).astype(str)


def build_groups(values: Mapping[str, pd.Series], intersections: list[list[str]], n: int) -> GroupSet:
    """The overall population, each attribute's values, and each declared intersection's combinations."""
    names = list(values)
    codes, levels = [], []
    for name in names:
        code, uniques = pd.factorize(values[name], sort=True)
        codes.append(code)
        levels.append([str(u) for u in uniques])
    if codes:
        combined = np.ravel_multi_index(codes, [len(lv) for lv in levels])
        present, strata = np.unique(combined, return_inverse=True)
        per_stratum = np.array(np.unravel_index(present, [len(lv) for lv in levels]))  # (attributes, strata)
    else:
        strata, per_stratum = np.zeros(n, dtype=np.int64), np.zeros((0, 1), dtype=np.int64)
    n_strata = per_stratum.shape[1]
    group_names = [OVERALL]
    members = [np.ones(n_strata, dtype=bool)]
    kinds: list[tuple[str, ...]] = [()]
    for combo in [[name] for name in names] + intersections:
        index = [names.index(c) for c in combo]
        seen = sorted({tuple(per_stratum[i, s] for i in index) for s in range(n_strata)})
        for values_at in seen:
            mask = np.all([per_stratum[i] == v for i, v in zip(index, values_at, strict=True)], axis=0)
            group_names.append(
                (" × ".join(combo), " × ".join(levels[i][v] for i, v in zip(index, values_at, strict=True)))
            )
            members.append(mask)
            kinds.append(tuple(combo))
    return GroupSet(group_names, np.array(members), np.asarray(strata, dtype=np.int64), kinds)
