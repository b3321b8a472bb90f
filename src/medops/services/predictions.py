"""The prediction log as its readers meet it: list, show, export and replay.

The log holds the features each patient was scored on (pseudonymized), so reading it is
limited to ``READ_ROLES``; an export or a replay is audited. Every operation first drains what
stopped servers left in their spools, so a prediction whose response was sent is always found.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.caller import Caller
from medops.errors import Conflict, InvalidInput
from medops.identity.roles import Role
from medops.platform import Platform
from medops.serving import prediction_log
from medops.serving.prediction_log import LoggedPrediction, PredictionFilter
from medops.serving.replay import ReplayReport

READ_ROLES = {Role.AUDITOR, Role.VALIDATOR, Role.ML_ENGINEER, Role.ADMIN}
EXPORT_FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    rows: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "rows": self.rows, "sha256": self.sha256}


class PredictionService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def _reader(self, caller: Caller, action: str) -> None:
        self.platform.users.require_role(caller.user, action, READ_ROLES)
        prediction_log.recover(self.platform)

    def list(self, caller: Caller, where: PredictionFilter, *, limit: int = 50) -> list[LoggedPrediction]:
        """The newest matches first."""
        self._reader(caller, "predictions.list")
        return prediction_log.latest(self.platform, where, limit)

    def show(self, caller: Caller, prediction_id: str) -> LoggedPrediction:
        self._reader(caller, "predictions.show")
        return prediction_log.get(self.platform, prediction_id.strip())

    def export(
        self,
        caller: Caller,
        where: PredictionFilter,
        output: Path,
        *,
        format: str | None = None,
        overwrite: bool = False,
        on_rows: Callable[[int], None] | None = None,
    ) -> ExportResult:
        """Every match, in time order, to a JSON Lines or Parquet file written whole or not at all."""
        from medops.data.sources import file_sha256

        kind = format or ("parquet" if output.suffix.lower() in (".parquet", ".pq") else "jsonl")
        if kind not in EXPORT_FORMATS:
            raise InvalidInput(f"export format {kind!r} is not known", hint=f"one of {', '.join(EXPORT_FORMATS)}")
        if output.exists() and not overwrite:
            raise Conflict(f"{output} already exists", code="output_exists", path=str(output))
        entity = "predictions"
        with self.platform.users.authorized(
            caller.user, "predictions.export", "prediction_log", entity, READ_ROLES
        ) as ch:
            prediction_log.recover(self.platform)
            pages = prediction_log.iterate(self.platform, where)
            output.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
            os.close(fd)
            try:
                rows = (
                    _write_jsonl(Path(temp), pages, on_rows)
                    if kind == "jsonl"
                    else _write_parquet(Path(temp), pages, on_rows)
                )
                os.replace(temp, output)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            digest = file_sha256(output)
            ch.after = {"rows": rows, "format": kind, "sha256": digest, "filter": _filter_json(where)}
        return ExportResult(output, kind, rows, digest)

    def replay(
        self, caller: Caller, where: PredictionFilter, *, on_rows: Callable[[int], None] | None = None
    ) -> ReplayReport:
        """Re-score every match with the bundle that answered it; the report names each difference."""
        from medops.serving.replay import Replayer

        with self.platform.users.authorized(
            caller.user, "predictions.replay", "prediction_log", "predictions", READ_ROLES
        ) as ch:
            prediction_log.recover(self.platform)
            report = Replayer(self.platform).replay(
                prediction_log.iterate(self.platform, where), ReplayReport(), on_rows
            )
            ch.after = {
                "replayed": report.replayed,
                "differences": len(report.differences),
                "filter": _filter_json(where),
            }
        return report

    def count(self, caller: Caller, where: PredictionFilter) -> int:
        """How many match (a progress bar's total)."""
        self._reader(caller, "predictions.list")
        return prediction_log.count(self.platform, where)


def _filter_json(where: PredictionFilter) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in vars(where).items() if v is not None}


def _write_jsonl(path: Path, pages: Any, on_rows: Callable[[int], None] | None) -> int:
    rows = 0
    with open(path, "w", encoding="utf-8") as out:
        for page in pages:
            for logged in page:
                out.write(json.dumps(logged.to_json(), separators=(",", ":")) + "\n")
            rows += len(page)
            if on_rows is not None:
                on_rows(len(page))
        out.flush()
        os.fsync(out.fileno())
    return rows


def _write_parquet(path: Path, pages: Any, on_rows: Callable[[int], None] | None) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("model", pa.string()),
            ("version", pa.int32()),
            ("bundle_sha256", pa.string()),
            ("variant", pa.string()),
            ("request_id", pa.string()),
            ("caller", pa.string()),
            ("entity", pa.string()),
            ("probability", pa.float64()),
            ("decision", pa.int8()),
            ("latency_ms", pa.float64()),
            ("inputs", pa.string()),  # JSON: rows of different models have different features
            ("output", pa.string()),
            ("explanation", pa.string()),
        ]
    )
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        for page in pages:
            columns: dict[str, list[Any]] = {name: [] for name in schema.names}
            for p in page:
                columns["id"].append(p.id)
                columns["at"].append(p.at)
                columns["model"].append(p.model)
                columns["version"].append(p.version)
                columns["bundle_sha256"].append(p.bundle_sha256)
                columns["variant"].append(p.variant)
                columns["request_id"].append(p.request_id)
                columns["caller"].append(p.caller)
                columns["entity"].append(p.entity)
                columns["probability"].append(p.output.get("probability"))
                columns["decision"].append(p.output.get("decision"))
                columns["latency_ms"].append(p.latency_ms)
                columns["inputs"].append(json.dumps(p.inputs))
                columns["output"].append(json.dumps(p.output))
                columns["explanation"].append(None if p.explanation is None else json.dumps(p.explanation))
            writer.write_table(pa.table(columns, schema=schema))
            rows += len(page)
            if on_rows is not None:
                on_rows(len(page))
    return rows
