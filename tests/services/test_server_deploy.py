"""`medops deploy server`: the platform server's image recipe and Kubernetes objects, valid against the
Kubernetes schemas, the workspace's settings pointed at mounted keys, written by an ml_engineer only."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from medops.audit import AuditFilter, list_events
from medops.errors import PermissionDenied
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import PASSWORD

KINDS = {
    "configmap.yaml": "ConfigMap",
    "deployment.yaml": "Deployment",
    "service.yaml": "Service",
    "hpa.yaml": "HorizontalPodAutoscaler",
    "networkpolicy.yaml": "NetworkPolicy",
    "pdb.yaml": "PodDisruptionBudget",
}


def caller(ws: Workspace, user: str) -> object:
    identity = Services(ws).identity
    return identity.authenticate(identity.login(user, password=PASSWORD)[1])


def test_the_server_deployment_is_valid_and_mounts_the_keys(registry: tuple[Workspace, str], tmp_path: Path) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    ws, _ = registry
    made = Services(ws).deploy.server(caller(ws, "ming"), tmp_path / "out", namespace="clinical-ml", replicas=3)  # type: ignore[arg-type]
    folder = tmp_path / "out" / "kubernetes"
    docs = {name: yaml.safe_load((folder / name).read_text()) for name in KINDS}
    for name, doc in docs.items():
        assert doc["kind"] == KINDS[name] and doc["metadata"]["namespace"] == "clinical-ml"
        kv.validate(doc, "1.30.0", strict=True)
    settings = tomllib.loads(docs["configmap.yaml"]["data"]["medops.toml"])
    assert settings["signing_key_file"] == "/etc/medops/keys/signing.ed25519"
    assert settings["pseudonym_key_file"] == "/etc/medops/keys/pseudonym.key"
    pod = docs["deployment.yaml"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/etc/medops/workspace", "/etc/medops/keys", "/tmp"}
    assert docs["deployment.yaml"]["spec"]["replicas"] == 3
    dockerfile = (tmp_path / "out" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["medops", "server", "--host", "0.0.0.0", "--port", "8080"]' in dockerfile
    assert any("local to one machine" in w for w in made.warnings)  # the test workspace's artifacts are a folder
    events = list_events(ws.db, AuditFilter(action="server.deploy"), limit=5)
    assert [(e.actor, e.after["image"]) for e in events] == [("ming", made.image)]


def test_only_an_ml_engineer_or_admin_writes_it(registry: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, _ = registry
    with pytest.raises(PermissionDenied):
        Services(ws).deploy.server(caller(ws, "alice"), tmp_path / "out")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
