"""Bundles: a registered version predicts anywhere, with input checks; exported and imported only when
every signature and checksum holds; tampered or unsafe archives are refused, and nothing is written."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.errors import IntegrityError, InvalidInput, PermissionDenied
from medops.registry import bundles, transfer, versions
from medops.registry.bundles import BundleError
from medops.registry.predictor import load_model
from medops.training import Tracker, stored
from medops.workspace import Workspace, init_workspace
from tests.factories import COHORT_FEATURES as FEATURES
from tests.factories import PASSWORD, cohort, evaluate_run, govern, train_run

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _repack(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return gzip.compress(raw.getvalue())  # gzipped by someone on the way: still read, still checked


def test_a_version_predicts_with_input_checks(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    version = versions.register(ws, run, "readmission", actor="alice")
    predictor = load_model(ws, "readmission:1")
    frame = cohort(50, biased=False, seed=9)
    trained = stored.model(Tracker(ws), Tracker(ws).get(run))
    inside = frame[(frame["age"].between(30, 95)) & (frame["los"] < 15)].reset_index(drop=True)
    assert np.array_equal(predictor.predict_proba(inside), trained.predict_proba(inside))
    assert set(np.unique(predictor.predict(inside))) <= {0, 1}
    assert predictor.threshold == predictor.bundle.output_schema["threshold"] and 0 < predictor.threshold < 1
    assert version.record()["bundle_sha256"] == version.artifact_sha256
    wrong = inside.copy()
    wrong.loc[3, "age"] = 65 * 12  # months where years are expected
    with pytest.raises(InvalidInput, match="row 3, column 'age': outside the accepted range"):
        predictor.predict_proba(wrong)
    with pytest.raises(InvalidInput, match="input has no column 'los'"):
        predictor.predict(inside.drop(columns=["los"]))
    meta = predictor.bundle.metadata
    assert meta["run"] == run and meta["trained_by"] == "alice" and meta["evaluation"]["passed"] is True
    assert [f["name"] for f in predictor.bundle.input_schema["features"]] == predictor.features


def test_the_top_level_load_reuses_the_workspace_and_verifies_every_load(
    registry: tuple[Workspace, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import medops

    ws, run = registry
    version = versions.register(ws, run, "readmission", actor="alice")
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    first, second = medops.load_model("readmission:1"), medops.load_model("readmission:1")
    assert first.bundle.metadata["run"] == second.bundle.metadata["run"] == run
    assert medops._process_tracker()[0].ws is medops._process_tracker()[0].ws  # opened once for the process
    stored_bundle = ws.artifacts.local_path(version.artifact_sha256)
    stored_bundle.chmod(0o600)
    stored_bundle.write_bytes(stored_bundle.read_bytes()[:-7] + b"tamper!")  # changed after the first loads
    with pytest.raises(IntegrityError, match="is corrupt: its bytes hash to"):
        medops.load_model("readmission:1")


def test_export_import_and_every_tamper_is_refused(
    registry: tuple[Workspace, str],
    tmp_path: Path,
) -> None:
    ws, run = registry
    versions.register(ws, run, "readmission", actor="alice")
    exported = tmp_path / "out" / "readmission-1.medops"
    exported.parent.mkdir()
    transfer.export(ws, "readmission:1", exported, actor="admin")
    data = exported.read_bytes()
    other = init_workspace(
        tmp_path / "site-b", admin_username="root", admin_full_name="Rita Root", admin_password=PASSWORD
    )
    with other:
        with pytest.raises(BundleError, match="which this workspace does not trust"):
            transfer.import_bundle(other, exported, actor="root")
        with pytest.raises(PermissionDenied):
            other.users.add("root", "dan", "Dan Data", PASSWORD, [])
            transfer.trust_key(other, transfer.public_key(ws), note="site A", actor="dan")
        transfer.trust_key(other, transfer.public_key(ws), note="site A registry", actor="root")
        imported = transfer.import_bundle(other, exported, actor="root")
        assert (imported.ref, imported.run_id, imported.origin["metadata"]["run"]) == ("readmission:1", None, run)
        assert imported.required_approvals == ["clinical_reviewer", "validator"]  # this workspace's rule
        assert load_model(other, "readmission:1").features == load_model(ws, "readmission:1").features

        files = _members(data)
        model_swapped = dict(files)
        model_swapped["model.skops"] = files["model.skops"][:-1] + bytes([files["model.skops"][-1] ^ 1])
        manifest = json.loads(files["manifest.json"])
        manifest["model"] = "another"
        manifest_changed = {**files, "manifest.json": json.dumps(manifest).encode()}
        stranger = bundles.build(
            Ed25519PrivateKey.generate(),
            model=files["model.skops"],
            input_schema=json.loads(files["input_schema.json"]),
            output_schema=json.loads(files["output_schema.json"]),
            metadata=json.loads(files["metadata.json"]),
            environment=files["environment.lock"].decode(),
        )
        import skops.io as sio

        unsafe = bundles.build(  # signed by the trusted key, but the model would build a type nobody vetted
            ws.signing_key(),
            model=sio.dumps(Fraction(1, 3)),
            input_schema=json.loads(files["input_schema.json"]),
            output_schema=json.loads(files["output_schema.json"]),
            metadata=json.loads(files["metadata.json"]),
            environment="",
        )
        escape = tarfile.TarInfo("../evil.txt")
        escape.size = 4
        absolute = tarfile.TarInfo(str(tmp_path / "evil-abs.txt"))
        absolute.size = 4
        link = tarfile.TarInfo("model.skops")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF
        cases = {
            "a modified byte": (bytes(flipped), "not a medops bundle|damaged|checksum|the bundle holds"),
            "a swapped model file": (_repack(model_swapped), "model.skops does not match its checksum"),
            "a changed manifest": (_repack(manifest_changed), "signature does not verify"),
            "another key": (stranger, "does not trust"),
            "an unsafe type in the model": (unsafe, "outside the safe list: fractions.Fraction"),
            "a ../ member": (_repack(files, [escape]), "absolute or escaping path"),
            "an absolute member": (_repack(files, [absolute]), "absolute or escaping path"),
            "a symlink": (_repack({k: v for k, v in files.items() if k != "model.skops"}, [link]), "is a link"),
        }
        for what, (blob, message) in cases.items():
            bad = tmp_path / "bad.medops"
            bad.write_bytes(blob)
            with pytest.raises(BundleError, match=message):
                transfer.import_bundle(other, bad, actor="root")
            with pytest.raises(BundleError, match=message):
                load_model(other, bad)
            assert len(versions.versions(other, "readmission")) == 1, what  # nothing registered
        assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "evil-abs.txt").exists()
        assert not list(tmp_path.rglob("evil*"))


def test_a_lightgbm_version_travels_as_lightgbm_text(
    registry: tuple[Workspace, str],
    tmp_path: Path,
) -> None:
    from medops.training.trainers import ModelSpec

    ws, _ = registry
    tracker = Tracker(ws)
    run = train_run(
        tracker,
        tmp_path,
        "gbm",
        cohort(1500, biased=False),
        ModelSpec("lightgbm", {"n_estimators": 40}),
        FEATURES,
    )
    versions.register(ws, run, "readmission", actor="alice")
    exported = tmp_path / "gbm.medops"
    transfer.export(ws, "readmission:1", exported, actor="admin")
    assert sorted(_members(exported.read_bytes())) == sorted(
        [
            "manifest.json",
            "model.txt",
            "inference.json",
            "input_schema.json",
            "output_schema.json",
            "metadata.json",
            "environment.lock",
        ]
    )
    predictor = load_model(ws, exported)
    frame = cohort(200, biased=False, seed=5)
    inside = frame[~predictor.schema.flagged(frame)].reset_index(drop=True)
    trained = stored.model(tracker, tracker.get(run))
    assert np.array_equal(predictor.predict_proba(inside), trained.predict_proba(inside))
    with pytest.raises(InvalidInput, match="not a scikit-learn object"):
        predictor.model  # noqa: B018
    assert transfer.import_bundle(ws, exported, name="gbm_copy", actor="alice").version == 1


def test_an_imported_version_needs_a_validator_here_to_accept_its_evaluation(
    registry: tuple[Workspace, str],
    tmp_path: Path,
) -> None:
    from medops.errors import InvalidTransition
    from medops.identity import Role
    from medops.registry import approvals, stages

    ws, run = registry
    versions.register(ws, run, "readmission", actor="alice")
    exported = tmp_path / "readmission-1.medops"
    transfer.export(ws, "readmission:1", exported, actor="admin")
    other = init_workspace(
        tmp_path / "site-b", admin_username="root", admin_full_name="Rita Root", admin_password=PASSWORD
    )
    with other:
        govern(other)
        transfer.trust_key(other, transfer.public_key(ws), note="site A registry", actor="root")
        for user, role in (("vera", Role.VALIDATOR), ("cleo", Role.CLINICAL_REVIEWER), ("max", Role.ML_ENGINEER)):
            other.users.add("root", user, user.title(), PASSWORD, [role])
        imported = transfer.import_bundle(other, exported, actor="root", extra_approvals=["clinical_reviewer"])
        assert imported.required_approvals == ["clinical_reviewer", "validator"]
        ref = ("readmission", imported.version)
        approvals.approve(other, ref, "cleo", PASSWORD, "clinical_reviewer")
        approvals.approve(other, ref, "vera", PASSWORD, "validator")
        with pytest.raises(
            InvalidTransition, match="no validator here has accepted the exporting workspace's evaluation"
        ):
            stages.promote(other, "readmission", imported.version, "production", actor="max", reason="go")
        with pytest.raises(PermissionDenied):  # a clinical reviewer can't accept an evaluation
            approvals.accept_evaluation(other, ref, "cleo", PASSWORD, "read the report")
        from medops.audit import AuditFilter, list_events

        assert [e.actor for e in list_events(other.db, AuditFilter(action="model.accept_evaluation.denied"))] == [
            "cleo"
        ]
        with pytest.raises(InvalidInput, match="needs a reason"):
            approvals.accept_evaluation(other, ref, "vera", PASSWORD, " ")
        approvals.accept_evaluation(other, ref, "vera", PASSWORD, "reviewed site A's report R-17")
        moves = stages.promote(other, "readmission", imported.version, "production", actor="max", reason="go")
        assert [(m.name, m.version) for m in moves] == [("production", imported.version)]
    with pytest.raises(InvalidInput, match="trained here"):
        approvals.accept_evaluation(ws, ("readmission", 1), "victor", PASSWORD, "mine")


def test_serving_accepts_what_validation_accepted_and_a_model_may_flag_instead(
    registry: tuple[Workspace, str],
) -> None:
    """Built on training ranges alone, the predictor refused test rows its own validation had scored."""
    from medops.evaluation.evaluate import test_set
    from medops.evaluation.records import get as get_evaluation
    from medops.evaluation.records import record

    ws, run = registry
    tracker = Tracker(ws)
    version = versions.register(ws, run, "readmission", actor="alice")
    assert version.evaluation_id is not None
    doc = json.loads(ws.artifacts.read_bytes(get_evaluation(ws, version.evaluation_id).document))
    ts = test_set(tracker, run, lambda loc: ".".join(loc))
    assert ts.schema.flagged(ts.frame).sum() > 0  # the training ranges alone refuse some of the test rows
    assert doc["serving"]["test_rows_refused"] == 0 and doc["serving"]["out_of_range"] == "reject"
    predictor = load_model(ws, version.ref)
    assert len(predictor.predict_proba(ts.frame)) == len(ts.frame)  # every row validation scored is served
    age = predictor.bundle.input_schema["features"][predictor.features.index("age")]
    assert age["min"] < ts.schema.numeric["age"][0] and age["max"] > ts.schema.numeric["age"][1]
    govern(ws, serving={"out_of_range": "flag"})
    record(ws, evaluate_run(tracker, run, serving={"out_of_range": "flag"}), "", "", "", actor="victor")
    flagging = load_model(ws, versions.register(ws, run, "readmission", actor="alice").ref)
    wrong = ts.frame.head(5).copy()
    wrong.loc[3, "age"] = 65 * 12
    scores = flagging.predict_proba(wrong)  # scored, not refused, and the row is named
    assert len(scores) == 5 and np.flatnonzero(flagging.flags["age"]).tolist() == [3]
