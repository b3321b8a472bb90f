"""A few rows scored by LightGBM's single-row C entry point: a served request's usual size.

``Booster.predict`` prepares a predictor, its parameters and output buffers on every call,
which costs tens of microseconds more than walking the trees of one row. LightGBM's C API
keeps that preparation once per booster (``LGBM_BoosterPredictForMatSingleRowFastInit``) and
then scores one row per call with the same trees and the same transform, so the numbers are
those ``predict`` gives (a test compares them bit for bit). The Python package does not wrap
that entry point, so it is called through the library the package loaded; where that is not
possible (another build, a renamed attribute) ``predict`` is used and nothing else changes.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Any

import numpy as np

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the transformed score (a probability for a binary model)
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_configs: weakref.WeakKeyDictionary[Any, _FastConfig | None] = weakref.WeakKeyDictionary()
_making = threading.Lock()


class _FastConfig:
    """LightGBM's prepared single-row predictor for one booster; freed with the booster."""

    def __init__(self, lib: Any, handle: ctypes.c_void_p, columns: int) -> None:
        self.lib = lib
        self.handle = handle
        self.columns = columns

    def __del__(self) -> None:
        self.lib.LGBM_FastConfigFree(self.handle)


def predict_rows(booster: Any, matrix: np.ndarray) -> np.ndarray:
    """Each row's probability, as ``booster.predict(matrix)`` gives it."""
    config = _config(booster)
    if config is None or matrix.ndim != 2 or matrix.shape[1] != config.columns:
        return np.asarray(booster.predict(matrix, num_threads=1))
    rows = np.ascontiguousarray(matrix, dtype=np.float64)
    out = np.empty(len(rows))
    result = ctypes.c_double()
    length = ctypes.c_int64()
    call = config.lib.LGBM_BoosterPredictForMatSingleRowFast
    start, stride = rows.ctypes.data, rows.strides[0]
    for i in range(len(rows)):
        row = ctypes.c_void_p(start + i * stride)
        failed = call(config.handle, row, ctypes.byref(length), ctypes.byref(result))
        if failed or length.value != 1:  # not one value per row (a multiclass model): predict knows what to do
            return np.asarray(booster.predict(matrix, num_threads=1))
        out[i] = result.value
    return out


def _config(booster: Any) -> _FastConfig | None:
    try:
        return _configs[booster]
    except KeyError:
        pass
    with _making:
        if booster not in _configs:
            _configs[booster] = _make(booster)
        return _configs[booster]


def _make(booster: Any) -> _FastConfig | None:
    try:
        from lightgbm import basic

        lib, c_str = basic._LIB, basic._c_str  # type: ignore[attr-defined]
        handle = booster._handle
        columns = int(booster.num_feature())
        # predict's own choice of trees: the best iteration when one was kept, else all of them
        iterations = int(getattr(booster, "best_iteration", 0) or 0)
    except (ImportError, AttributeError):
        return None
    out = ctypes.c_void_p()
    failed = lib.LGBM_BoosterPredictForMatSingleRowFastInit(
        handle,
        ctypes.c_int(_PREDICT_NORMAL),
        ctypes.c_int(0),
        ctypes.c_int(iterations),
        ctypes.c_int(_FLOAT64),
        ctypes.c_int32(columns),
        c_str("num_threads=1"),
        ctypes.byref(out),
    )
    if failed or not out.value:
        return None
    return _FastConfig(lib, out, columns)
