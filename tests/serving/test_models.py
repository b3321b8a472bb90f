"""Serving a bundle file as it is (what a container does with its baked-in bundle): verified against
the workspace's keys, byte for byte the registered version, never read from the artifact store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.caller import Caller
from medops.errors import IntegrityError, InvalidInput, NotFound
from medops.identity import Role
from medops.registry import bundles, stages, versions
from medops.registry.transfer import trusted_keys
from medops.server.app import create_app
from medops.server.background import serving_in_thread
from medops.services import Services
from medops.serving.models import is_bundle_file, load_specs
from medops.workspace import Workspace
from tests.factories import PASSWORD


@pytest.fixture
def baked(registry: tuple[Workspace, str], tmp_path: Path) -> tuple[Workspace, Path]:
    """``readmission`` version 1 with the alias ``champion``, and a copy of its bundle outside the workspace."""
    ws, run_id = registry
    info = versions.register(ws, run_id, "readmission", actor="alice")
    stages.set_alias(ws, "readmission", "champion", 1, actor="ming", reason="the live model")
    bundle = tmp_path / "image" / "readmission-1.medops"
    bundle.parent.mkdir()
    shutil.copyfile(ws.artifacts.local_path(info.artifact_sha256), bundle)
    return ws, bundle


def test_a_spec_is_a_bundle_file_when_it_is_a_path() -> None:
    assert is_bundle_file("/opt/medops/model/readmission-1.medops") and is_bundle_file("readmission-1.medops")
    assert is_bundle_file("model/r1") and not is_bundle_file("readmission:1")
    assert not is_bundle_file("readmission@champion") and not is_bundle_file("readmission")


def test_the_bundle_file_is_served_without_the_artifact_store(baked: tuple[Workspace, Path]) -> None:
    ws, bundle = baked
    info = versions.get(ws, "readmission", 1)
    stored = ws.artifacts.local_path(info.artifact_sha256)
    stored.chmod(0o600)
    stored.unlink()  # the store has lost it: only the file given can be what serves
    with pytest.raises(NotFound, match="not in the store"):
        load_specs(ws, ["readmission:1"])
    (model,) = load_specs(ws, [str(bundle)]).values()
    assert (model.name, model.version, model.bundle_sha256) == ("readmission", 1, info.artifact_sha256)
    assert model.aliases == ["champion"] and model.stage == info.stage
    assert (
        model.bundle_file == str(bundle) and model.worker_spec == str(bundle) and model.spec is None
    )  # what another worker loads again
    assert [f["name"] for f in model.input_schema["features"]] == model.predictor.features


def test_a_tampered_bundle_is_refused(baked: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, bundle = baked
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "tampered.medops"
    tampered.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as refused:
        load_specs(ws, [str(tampered)])
    assert refused.value.code.startswith("bundle_")


def test_a_bundle_signed_by_another_key_is_refused(baked: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, bundle = baked
    foreign = tmp_path / "foreign.medops"
    foreign.write_bytes(_rebuilt(ws, bundle, Ed25519PrivateKey.generate()))
    with pytest.raises(IntegrityError) as refused:
        load_specs(ws, [str(foreign)])
    assert refused.value.code == "bundle_key_untrusted"


def test_a_signed_bundle_that_is_not_the_registered_one_is_refused(
    baked: tuple[Workspace, Path], tmp_path: Path
) -> None:
    ws, bundle = baked
    other = tmp_path / "rebuilt.medops"
    other.write_bytes(_rebuilt(ws, bundle, ws.signing_key()))  # the workspace's own signature, other bytes
    with pytest.raises(IntegrityError) as refused:
        load_specs(ws, [str(other)])
    assert refused.value.code == "bundle_not_registered" and "readmission:1" in refused.value.message


def test_a_missing_file_and_a_model_named_twice_are_refused(baked: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, bundle = baked
    with pytest.raises(InvalidInput, match="no bundle file"):
        load_specs(ws, [str(tmp_path / "absent.medops")])
    with pytest.raises(InvalidInput, match="named twice"):
        load_specs(ws, ["readmission:1", str(bundle)])


def test_the_api_answers_from_the_bundle_file(baked: tuple[Workspace, Path]) -> None:
    ws, bundle = baked
    services = Services(ws)
    ws.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    _, token = services.identity.create_token(Caller("admin", channel="token"), "ehr", username="pat")
    models = services.serving.load([str(bundle)])
    with (
        serving_in_thread(create_app(services, models), start_timeout=5.0) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
    ):
        example = http.get("/v1/models/readmission").json()["example"]
        answer = http.post("/v1/models/readmission/predict", json=example)
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["predictions"]
        assert (row["model"], row["version"]) == ("readmission", 1)
        assert row["bundle_sha256"] == versions.get(ws, "readmission", 1).artifact_sha256
        assert httpx.post(f"{url}/v1/models/readmission/predict", json=example).status_code == 401


def _rebuilt(ws: Workspace, bundle: Path, key: Ed25519PrivateKey) -> bytes:
    """The same model in a new bundle signed by ``key``: a note in its metadata makes its bytes differ."""
    read = bundles.read(bundle, trusted_keys(ws))
    native = bundles.native_model(read)
    return bundles.build(
        key,
        model=None if native else read.file(bundles.SKOPS),
        input_schema=read.input_schema,
        output_schema=read.output_schema,
        metadata={**read.metadata, "note": "rebuilt"},
        environment=read.file("environment.lock").decode(),
        inference=json.loads(read.file(bundles.INFERENCE)) if native else None,
        native=(native.file, read.file(native.file)) if native else None,
    )
