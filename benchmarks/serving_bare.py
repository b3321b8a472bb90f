"""The ceiling for bench_serving: a bare FastAPI endpoint that only turns the JSON row into the
model's matrix and calls the LightGBM booster's ``predict``. No validation, no auth, no metrics,
no request id, no thread hop.

Run by uvicorn as ``benchmarks.serving_bare:create --factory``; ``BENCH_BARE_MODEL`` names a
folder holding ``model.txt`` (the booster, as LightGBM saves it) and ``encoding.json`` (the
numeric columns with their medians, and each categorical column's categories, in the order
the booster's matrix has them), both written by bench_serving from the served bundle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

MODEL_ENV = "BENCH_BARE_MODEL"


def encoder(encoding: dict[str, Any]) -> Any:
    """A function from JSON rows to the booster's matrix: numbers as they are (a missing one gets the
    training median), each category one-hot (an unseen one all zeros)."""
    numeric: list[str] = encoding["numeric"]
    medians: list[float] = encoding["medians"]
    categorical: list[str] = encoding["categorical"]
    fills: list[Any] = encoding["fills"]
    offsets: list[dict[Any, int]] = []
    width = len(numeric)
    for values in encoding["categories"]:
        offsets.append({v: width + i for i, v in enumerate(values)})
        width += len(values)

    def encode(rows: list[dict[str, Any]]) -> np.ndarray:
        x = np.zeros((len(rows), width))
        for r, row in enumerate(rows):
            for j, name in enumerate(numeric):
                value = row.get(name)
                x[r, j] = medians[j] if value is None else value
            for name, fill, offset in zip(categorical, fills, offsets, strict=True):
                value = row.get(name)
                column = offset.get(fill if value is None else value)
                if column is not None:
                    x[r, column] = 1.0
        return x

    return encode


def create() -> FastAPI:
    folder = Path(os.environ[MODEL_ENV])
    booster = lightgbm.Booster(model_file=str(folder / "model.txt"))
    encode = encoder(json.loads((folder / "encoding.json").read_text()))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        rows = body if isinstance(body, list) else [body]
        probabilities = booster.predict(encode(rows))
        return JSONResponse({"predictions": [float(p) for p in probabilities]})

    return app
