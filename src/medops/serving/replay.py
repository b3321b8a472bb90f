"""Replay: re-score logged inputs with the bundle that answered them, and name every answer that differs.

An untouched log replays identically: the same verified bundle, the same checks and the same
scoring path as the server. A difference means the log, the bundle or the scoring code
changed since; each is reported with the prediction's id, never its input values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from medops.platform import Platform
from medops.serving.models import ServedModel
from medops.serving.prediction_log import LoggedPrediction
from medops.serving.validation import RowsInvalid


@dataclass(frozen=True)
class Difference:
    id: str
    model: str
    version: int
    what: str  # probability, decision, invalid_input or bundle_changed
    logged: Any
    replayed: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "what": self.what,
            "logged": self.logged,
            "replayed": self.replayed,
        }


@dataclass
class ReplayReport:
    replayed: int = 0
    differences: list[Difference] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)  # "model:version" -> predictions replayed

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "identical": self.identical,
            "versions": self.versions,
            "differences": [d.to_json() for d in self.differences],
        }


class Replayer:
    """Loads each (model, version) once, verified, and re-scores pages of logged predictions."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._models: dict[tuple[str, int], ServedModel] = {}

    def _model(self, name: str, version: int) -> ServedModel:
        key = (name, version)
        if key not in self._models:
            from medops.registry.predictor import load_model
            from medops.registry.versions import get

            info = get(self.platform, name, version)
            predictor = load_model(self.platform, key)  # signature and every checksum verified
            self._models[key] = ServedModel(
                name, version, info.artifact_sha256, info.stage, [], predictor, dict(predictor.bundle.input_schema)
            )
        return self._models[key]

    def answer(self, logged: LoggedPrediction, *, explained: bool = False) -> dict[str, Any]:
        """What the bundle that answered ``logged`` answers its inputs now (with the explanation if asked)."""
        from medops.serving.scoring import score

        return score(self._model(logged.model, logged.version), [logged.inputs], explained=explained)[0]

    def replay(
        self,
        pages: Iterable[list[LoggedPrediction]],
        report: ReplayReport,
        on_page: Callable[[int], None] | None = None,
    ) -> ReplayReport:
        for page in pages:
            groups: dict[tuple[str, int], list[LoggedPrediction]] = {}
            for logged in page:
                groups.setdefault((logged.model, logged.version), []).append(logged)
            for (name, version), logged_rows in groups.items():
                self._compare(self._model(name, version), logged_rows, report)
            if on_page is not None:
                on_page(len(page))
        return report

    def _compare(self, model: ServedModel, logged_rows: list[LoggedPrediction], report: ReplayReport) -> None:
        from medops.serving.scoring import score

        key = f"{model.name}:{model.version}"
        report.versions[key] = report.versions.get(key, 0) + len(logged_rows)
        report.replayed += len(logged_rows)
        current = [r for r in logged_rows if r.bundle_sha256 == model.bundle_sha256]
        for r in logged_rows:
            if r.bundle_sha256 != model.bundle_sha256:
                report.differences.append(
                    Difference(r.id, r.model, r.version, "bundle_changed", r.bundle_sha256, model.bundle_sha256)
                )
        if not current:
            return
        try:
            answers = score(model, [r.inputs for r in current])
        except RowsInvalid as exc:
            bad = {e.row for e in exc.errors}
            for i in sorted(bad):
                r = current[i]
                report.differences.append(Difference(r.id, r.model, r.version, "invalid_input", None, None))
            rest = [r for i, r in enumerate(current) if i not in bad]
            if rest:
                self._compare_rows(model, rest, score(model, [r.inputs for r in rest]), report)
            return
        self._compare_rows(model, current, answers, report)

    @staticmethod
    def _compare_rows(
        model: ServedModel, rows: list[LoggedPrediction], answers: list[dict[str, Any]], report: ReplayReport
    ) -> None:
        for r, answer in zip(rows, answers, strict=True):
            if answer["probability"] != r.output.get("probability"):
                report.differences.append(
                    Difference(
                        r.id, r.model, r.version, "probability", r.output.get("probability"), answer["probability"]
                    )
                )
            elif answer["decision"] != r.output.get("decision"):
                report.differences.append(
                    Difference(r.id, r.model, r.version, "decision", r.output.get("decision"), answer["decision"])
                )
