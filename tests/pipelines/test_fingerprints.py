"""Cache keys: file digests reused only for the same size and time, changes named, adapters left out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medops.pipelines import fingerprints
from medops.pipelines.fingerprints import changes, file_digest, step_key


def test_a_file_is_read_again_only_when_its_size_or_time_changed(tmp_path: Path) -> None:
    path = tmp_path / "raw.csv"
    path.write_text("a,b\n1,2\n")
    first = file_digest(path)
    fake = {**first, "sha256": "0" * 64}
    assert file_digest(path, fake)["sha256"] == "0" * 64  # same size and time: the recorded digest stands
    os.utime(path, ns=(first["mtime_ns"], first["mtime_ns"] + 1))
    assert file_digest(path, fake)["sha256"] == first["sha256"]  # touched: read again, same bytes
    assert step_key({"data": file_digest(path)}) == step_key({"data": first})  # a touch is not a change


def test_changes_name_the_inputs_that_differ() -> None:
    before = {"section": {"model": {"trees": 100}, "seed": 1}, "code": "a", "data": {"sha256": "x", "mtime_ns": 1}}
    after = {"section": {"model": {"trees": 120}, "seed": 1}, "code": "b", "data": {"sha256": "x", "mtime_ns": 2}}
    assert changes(before, after) == ["code", "section.model.trees"]
    assert changes(before, {**before, "upstream": {}}) == ["upstream"]


def test_the_code_fingerprint_covers_the_domain_not_the_adapters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for part in ("cli", "training"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "m.py").write_text("x = 1\n")
    monkeypatch.setattr(fingerprints, "_PACKAGE", tmp_path)

    def fingerprint() -> str:
        fingerprints.code_fingerprint.cache_clear()
        return fingerprints.code_fingerprint()

    try:
        before = fingerprint()
        (tmp_path / "cli" / "m.py").write_text("x = 2  # a printed line changed\n")
        assert fingerprint() == before
        (tmp_path / "training" / "m.py").write_text("x = 2\n")
        assert fingerprint() != before
    finally:
        fingerprints.code_fingerprint.cache_clear()
