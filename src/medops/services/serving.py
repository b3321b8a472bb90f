"""Serving as its callers meet it: batch scoring of a file or a dataset by a registered model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from medops.caller import Caller
from medops.errors import NotFound
from medops.platform import Platform

if TYPE_CHECKING:  # pandas, Arrow and the model libraries load with the scoring itself
    from medops.registry.versions import VersionInfo
    from medops.serving.batch import ScoreInput, ScoreResult


class ServingService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def resolve(self, ref: str) -> VersionInfo:
        """``NAME:VERSION``, or ``NAME``: its production version."""
        from medops.registry.versions import get, parse_ref, versions

        name, version = parse_ref(ref)
        if version is not None:
            return get(self.platform, name, version)
        production = [v for v in versions(self.platform, name) if v.stage == "production"]
        if not production:
            raise NotFound(
                f"model {name!r} has no production version",
                code="no_production_version",
                hint=f"name a version: {name}:VERSION",
            )
        return production[0]

    def score_input(self, value: str) -> ScoreInput:
        """A Parquet or CSV file when ``value`` is one (or is named like one), else a dataset reference."""
        from medops.data.datasets import get
        from medops.serving.batch import PARQUET_SUFFIXES, ScoreInput, file_input

        path = Path(value).expanduser()
        if path.exists() or path.suffix.lower() in (*PARQUET_SUFFIXES, ".csv"):
            return file_input(path)
        info = get(self.platform.db, value)
        return ScoreInput(
            self.platform.artifacts.local_path(info.version), "parquet", info.node, dataset=info.ref, rows=info.rows
        )

    def score(
        self,
        caller: Caller,
        ref: str,
        source: ScoreInput,
        output: Path,
        *,
        keep: list[str] | tuple[str, ...] = (),
        chunk_rows: int | None = None,
        overwrite: bool = False,
        reason: str | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> ScoreResult:
        """Score ``source`` with the verified bundle of ``ref`` into ``output`` (see medops.serving.batch)."""
        from medops.registry.predictor import load_model
        from medops.serving.batch import DEFAULT_CHUNK_ROWS, SCORE_ROLES, score

        info = self.resolve(ref)
        self.platform.users.require_role(caller.user, "predictions.score", SCORE_ROLES)  # before the bundle is read
        predictor = load_model(self.platform, (info.model, info.version))
        return score(
            self.platform,
            predictor,
            info.artifact_sha256,
            source,
            output,
            actor=caller.user,
            keep=keep,
            chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
            overwrite=overwrite,
            reason=reason,
            on_chunk=on_chunk,
        )
