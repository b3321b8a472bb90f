"""Evaluations as their readers meet them: the list, one in full with its report, its predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from medops.caller import Caller
from medops.errors import InvalidInput
from medops.evaluation import records
from medops.evaluation.records import EvaluationInfo
from medops.platform import Platform
from medops.training import Tracker


@dataclass(frozen=True)
class EvaluationDetail:
    info: EvaluationInfo

    def to_json(self) -> dict[str, Any]:
        info = self.info
        return {
            **info.to_json(),
            "gates": info.gates,
            "artifacts": {
                "document": info.document,
                "report": info.report,
                "card_markdown": info.card_markdown,
                "card_html": info.card_html,
            },
        }


class EvaluationService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def list(self, caller: Caller, *, run: str | None = None, limit: int = 50) -> list[EvaluationInfo]:
        run_id = Tracker(self.platform).get(run).id if run else None
        return records.list_for(self.platform, run_id, limit)

    def show(self, caller: Caller, ref: str) -> EvaluationDetail:
        return EvaluationDetail(records.get(self.platform, ref))

    def document(self, caller: Caller, ref: str, kind: str) -> tuple[str, bytes]:
        """The report or the model card (card_html, card_markdown): its SHA-256 and its bytes, read back verified."""
        info = records.get(self.platform, ref)
        documents = {"report": info.report, "card_html": info.card_html, "card_markdown": info.card_markdown}
        if kind not in documents:
            raise InvalidInput(f"no evaluation document {kind!r}", hint=f"one of {', '.join(documents)}")
        digest = documents[kind]
        return digest, self.platform.artifacts.read_bytes(digest)

    def predictions(self, caller: Caller, ref: str) -> pa.Table:
        """Every test row's outcome, score and decision; validators and auditors only, audited."""
        return records.predictions(self.platform, ref, actor=caller.user)
