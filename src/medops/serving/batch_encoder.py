"""A chunk of batch scoring straight from Arrow into the model's matrix and the rows' flags.

The general path (``Predictor.predict_proba`` on ``batch.to_pandas()``) turns every string of a
categorical column into a Python object, then looks each one up twice: once against the
schema's categories, once in the one-hot index. Arrow holds such a column as a few distinct
strings and an integer code per row, so both lookups are done once per distinct value and
spread to the rows with NumPy. The numbers, checks and matrix are the general path's (a test
compares them bit for bit, with missing values, unseen categories and out-of-range rows).

Only plain columns take this path: numbers (integer, float, boolean) for numeric features,
strings for categorical ones. Anything else, and any chunk with a row the model's policy
refuses, goes to the general path, which names each problem as before.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medops.registry.predictor import Predictor


def encode_chunk(
    predictor: Predictor, batch: pa.RecordBatch, *, refuse: bool = True
) -> tuple[np.ndarray, np.ndarray] | None:
    """The chunk's model matrix and which rows break a check, or None for the general path.

    ``refuse=False`` (a monitor scoring what it counts, not what it serves): the checks are skipped and
    no row is flagged; rows the policy would refuse are encoded all the same (the checks never change
    a row's matrix)."""
    compiled, schema = predictor.compiled, predictor.schema
    if compiled is None or any(f not in batch.schema.names for f in predictor.features):
        return None
    if not {*compiled.numeric, *compiled.categorical} <= set(predictor.features):
        return None  # the model reads a column the checks don't name: only the general path knows it
    categorical = {*schema.categorical, *compiled.categorical}
    if categorical & {*schema.numeric, *compiled.numeric}:
        return None  # a feature checked as one kind and scored as the other: left to the general path
    numbers: dict[str, np.ndarray] = {}
    strings: dict[str, tuple[np.ndarray, list[str], np.ndarray]] = {}  # codes, distinct values, missing
    for name in predictor.features:
        column = batch.column(name)
        if name in categorical:
            encoded = _strings(column)
            if encoded is None:
                return None
            strings[name] = encoded
        else:
            values = _numbers(column)
            if values is None:
                return None
            numbers[name] = values
    n = batch.num_rows
    flags = _flags(predictor, numbers, strings, n) if refuse else np.zeros(n, dtype=bool)
    if flags.any() and predictor.out_of_range != "flag":
        return None  # refused: the general path says which rows and why
    columns: dict[str, np.ndarray] = {}
    for name, fill, index in zip(compiled.categorical, compiled.fills, compiled.indexes, strict=True):
        codes, distinct, missing = strings[name]
        block = np.fromiter((index.get(v, -1) for v in distinct), dtype=np.intp, count=len(distinct))
        column = block[codes] if len(distinct) else np.full(n, -1, dtype=np.intp)
        if missing.any():
            column[missing] = -1 if fill is None or fill != fill else index.get(fill, -1)
        columns[name] = column
    return compiled.matrix_from(numbers, columns, n), flags


def _flags(
    predictor: Predictor,
    numbers: dict[str, np.ndarray],
    strings: dict[str, tuple[np.ndarray, list[str], np.ndarray]],
    n: int,
) -> np.ndarray:
    """Which rows break a check of the version's input schema: out of range, unseen, or missing."""
    schema = predictor.schema
    flags = np.zeros(n, dtype=bool)
    for name, (low, high) in schema.numeric.items():
        if name in numbers:
            flags |= (numbers[name] < low) | (numbers[name] > high)
    for name, allowed in schema.categorical.items():
        if name in strings:
            codes, distinct, missing = strings[name]
            known = set(allowed)
            unseen = np.fromiter((v not in known for v in distinct), dtype=bool, count=len(distinct))
            flags |= ~missing & unseen[codes] if len(distinct) else np.zeros(n, dtype=bool)
    for name in schema.required:
        if name in numbers:
            flags |= np.isnan(numbers[name])
        elif name in strings:
            flags |= strings[name][2]
    return flags


def _numbers(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Floats with NaN where missing, as the general path's ``as_numbers`` gives; None for other types."""
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return None
    # unsafe: an int64 beyond 2**53 rounds to the nearest float, as NumPy's astype does
    floats = pc.cast(column, pa.float64(), safe=False)
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)


def _strings(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """Each row's index into the column's distinct strings (0 where missing), the strings, and
    which rows are missing; None for a column that is not strings."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        if not (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
            return None
        encoded = column
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encoded = pc.dictionary_encode(column)
    else:
        return None
    if isinstance(encoded, pa.ChunkedArray):  # a table's column: one array, one dictionary
        encoded = encoded.unify_dictionaries().combine_chunks() if encoded.num_chunks else None
        if encoded is None:
            return np.zeros(0, dtype=np.intp), [], np.zeros(0, dtype=bool)
    if encoded.dictionary.null_count:
        return None
    missing = np.asarray(encoded.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    codes = np.asarray(pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False), dtype=np.intp)
    distinct = [str(v) for v in encoded.dictionary.to_pylist()]
    return codes, distinct, missing
