"""`medops deploy`: the container recipe and the Kubernetes manifests of a registered model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from medops.audit import AuditFilter, list_events
from medops.caller import Caller
from medops.cli.main import COMMANDS
from medops.errors import Conflict, NotFound, PermissionDenied
from medops.identity import Role
from medops.registry import approvals, stages, versions
from medops.services import Services
from medops.serving import deploy as dep
from medops.serving.models import resolve_ref
from medops.workspace import Workspace
from tests.conftest import PSEUDONYM_KEY
from tests.factories import PASSWORD, log_in, run

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "deployment.yaml": "Deployment",
    "service.yaml": "Service",
    "hpa.yaml": "HorizontalPodAutoscaler",
    "networkpolicy.yaml": "NetworkPolicy",
    "pdb.yaml": "PodDisruptionBudget",
}


@pytest.fixture
def production(registry: tuple[Workspace, str]) -> Workspace:
    """``readmission`` version 1 in production, with the alias ``champion``; ming is the ML engineer."""
    ws, run_id = registry
    versions.register(ws, run_id, "readmission", actor="alice")
    approvals.approve(ws, ("readmission", 1), "carol", PASSWORD, "clinical_reviewer")
    approvals.approve(ws, ("readmission", 1), "victor", PASSWORD, "validator")
    stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    stages.set_alias(ws, "readmission", "champion", 1, actor="ming", reason="the live model")
    return ws


def _deploy(ws: Workspace, target: str, out: Path, ref: str = "readmission", **kw: Any) -> dep.DeployResult:
    return Services(ws).deploy.deploy(Caller("ming"), target, ref, out, **kw)


def _manifests(out: Path) -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load((out / "kubernetes" / name).read_text()) for name in KINDS}


def test_manifests_are_valid_kubernetes_objects(production: Workspace, tmp_path: Path) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    out = tmp_path / "k8s"
    result = _deploy(production, "kubernetes", out, namespace="clinical-ml", replicas=3)
    docs = _manifests(out)
    for name, doc in docs.items():
        assert doc["kind"] == KINDS[name]
        assert not re.search(r"[&*]id\d", (out / "kubernetes" / name).read_text())  # no YAML anchors
        kv.validate(doc, "1.30.0", strict=True)  # raises on an unknown field or a wrong type
    broken = json.loads(json.dumps(docs["deployment.yaml"]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"no": "port"}
    with pytest.raises(kv.ValidationError):  # the validator does refuse a bad manifest
        kv.validate(broken, "1.30.0", strict=True)
    assert {d["metadata"]["namespace"] for d in docs.values()} == {"clinical-ml"}
    assert docs["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]["image"] == result.image


def test_the_deployment_is_hardened(production: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    _deploy(production, "kubernetes", out, ref="readmission@champion")
    docs = _manifests(out)
    pod = docs["deployment.yaml"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(container["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == set(dep.WRITABLE)  # the only writable places: volumes, never the image
    assert docs["hpa.yaml"]["apiVersion"] == "autoscaling/v2"
    assert docs["pdb.yaml"]["apiVersion"] == "policy/v1"
    policy = docs["networkpolicy.yaml"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and len(policy["ingress"]) == 1
    selector = docs["deployment.yaml"]["spec"]["selector"]["matchLabels"]
    for name in ("service.yaml", "pdb.yaml"):
        assert (docs[name]["spec"]["selector"].get("matchLabels") or docs[name]["spec"]["selector"]) == selector
    assert policy["podSelector"]["matchLabels"] == selector


def test_the_dockerfile_runs_the_verified_bundle_as_a_non_root_user(production: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "image"
    result = _deploy(production, "docker", out)
    info = versions.get(production, "readmission", 1)
    text = (out / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    bundle = out / dep.bundle_file(info)
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == info.artifact_sha256 == result.bundle_sha256
    assert f"COPY --chmod=0444 {dep.bundle_file(info)} " in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry == dep.entrypoint(info)
    assert not (out / "kubernetes").exists()
    ignored = (out / ".dockerignore").read_text().splitlines()
    assert "*" in ignored  # nothing but what the Dockerfile copies


def test_no_secret_is_written(production: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    _deploy(production, "kubernetes", out)
    key_files = [p for p in production.settings.home.rglob("*") if p.is_file() and "key" in p.name.lower()]
    private = [p.read_bytes().strip() for p in key_files if b"PRIVATE" in p.read_bytes()]
    texts = [p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.endswith(".medops")]
    for data in texts:
        assert b"PRIVATE KEY" not in data and PASSWORD.encode() not in data and PSEUDONYM_KEY.encode() not in data
        assert not re.search(rb"medops_[A-Za-z0-9_\-]{16,}", data)  # no API token
        for secret in private:
            assert secret not in data
    assert (out / "model" / "bundle.pub").read_text().strip() == Services(production).registry.public_key(
        Caller("ming")
    )


def test_only_a_medops_wheel_of_this_version_is_copied(production: Workspace, tmp_path: Path) -> None:
    from medops.errors import InvalidInput
    from medops.version import installed_version

    other = tmp_path / "requests-2.0-py3-none-any.whl"
    other.write_bytes(b"PK")
    with pytest.raises(InvalidInput, match="not a medops"):
        _deploy(production, "docker", tmp_path / "out", wheel=other)
    old = tmp_path / "medops-0.0.1-py3-none-any.whl"
    old.write_bytes(b"PK")
    with pytest.raises(InvalidInput, match="not a medops"):
        _deploy(production, "docker", tmp_path / "out", wheel=old)
    assert not (tmp_path / "out").exists()
    ours = tmp_path / f"medops-{installed_version()}-py3-none-any.whl"
    ours.write_bytes(b"PK-wheel")
    result = _deploy(production, "docker", tmp_path / "out", wheel=ours)
    assert (tmp_path / "out" / "wheels" / ours.name).read_bytes() == b"PK-wheel"
    assert result.files[f"wheels/{ours.name}"] == hashlib.sha256(b"PK-wheel").hexdigest()


def test_requirements_are_pinned_from_this_environment(production: Workspace, tmp_path: Path) -> None:
    from importlib.metadata import version

    out = tmp_path / "image"
    _deploy(production, "docker", out)
    lines = [line for line in (out / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[a-z0-9][a-z0-9\-]*==\S+", line) for line in lines), lines
    pins = dict(line.split("==") for line in lines)
    assert pins["numpy"] == version("numpy") and pins["lightgbm"] == version("lightgbm")
    assert "psycopg-binary" in pins  # an extra medops asks for is followed
    assert "medops" not in pins and "pytest" not in pins


def test_the_entrypoint_is_a_medops_command(production: Workspace, tmp_path: Path) -> None:
    import importlib.util

    info = versions.get(production, "readmission", 1)
    entry = dep.entrypoint(info)
    check, serve = entry[: len(dep.START_CHECK)], entry[len(dep.START_CHECK) :]
    assert check[:3] == ["python", "-m", "medops.serving.container"] and check[-1] == "--"
    assert importlib.util.find_spec(check[2]) is not None
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert serve[0] in scripts and scripts[serve[0]] == "medops.cli.main:main"
    assert serve[1:4] == ["serve", f"{dep.HOME}/{dep.bundle_file(info)}", "--host"]  # the baked-in file itself
    if "serve" not in COMMANDS:
        pytest.skip("the serve command is not part of this build")
    from medops.cli.main import load

    command = load("serve")
    context = command.make_context("serve", list(serve[2:]))  # parses as a real invocation would
    assert context.params


def test_a_container_starts_only_on_a_verified_bundle(production: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "image"
    _deploy(production, "docker", out)
    info = versions.get(production, "readmission", 1)
    bundle, key = out / dep.bundle_file(info), out / "model" / "bundle.pub"
    start = [sys.executable, "-m", "medops.serving.container"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ok = subprocess.run([*start, str(bundle), str(key), "--", sys.executable, "-c", "print('serving')"], **_io(env))
    assert ok.returncode == 0 and ok.stdout.strip() == "serving", ok.stderr
    assert "verified (readmission:1)" in ok.stderr
    tampered = tmp_path / "tampered.medops"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    refused = subprocess.run(
        [*start, str(tampered), str(key), "--", sys.executable, "-c", "print('serving')"], **_io(env)
    )
    assert refused.returncode == 3 and "serving" not in refused.stdout
    assert "refused" in refused.stderr and "Traceback" not in refused.stderr
    other = tmp_path / "other.pub"
    other.write_text("A" * 43 + "=\n")  # a well-formed key that did not sign it
    wrong = subprocess.run(
        [*start, str(bundle), str(other), "--", sys.executable, "-c", "print('serving')"], **_io(env)
    )
    assert wrong.returncode == 3 and "serving" not in wrong.stdout and "Traceback" not in wrong.stderr


def _io(env: dict[str, str]) -> dict[str, Any]:
    return {"capture_output": True, "text": True, "env": env, "timeout": 120}


def test_refs_resolve_to_production_an_alias_or_a_version(
    production: Workspace, registry: tuple[Workspace, str], tmp_path: Path
) -> None:
    versions.register(production, registry[1], "sepsis", actor="alice")  # registered, never promoted
    assert resolve_ref(production, "readmission").version == 1
    assert resolve_ref(production, "readmission@champion").version == 1
    assert resolve_ref(production, "readmission:1").version == 1
    for ref, message in [
        ("readmission@nobody", "no alias 'nobody'"),
        ("readmission:9", "no version 9"),
        ("absent", "no registered model 'absent'"),
        ("sepsis", "no production version"),
    ]:
        with pytest.raises(NotFound, match=message):
            _deploy(production, "docker", tmp_path / "never", ref=ref)
    assert not (tmp_path / "never").exists()


def test_a_folder_in_use_is_refused_unless_forced(production: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "image"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(Conflict, match="not empty"):
        _deploy(production, "docker", out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = _deploy(production, "docker", out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and "Dockerfile" in result.files
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave no temporary file


def test_deploying_is_audited_and_needs_an_ml_engineer(production: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = _deploy(production, "kubernetes", out)
    events = list_events(production.db, AuditFilter(action="model.deploy"))
    assert len(events) == 1 and events[0].actor == "ming" and events[0].entity_id == "readmission:1"
    assert events[0].after["files"] == result.files and events[0].after["target"] == "kubernetes"
    assert events[0].after["stage"] == "production" == result.stage
    for path, digest in result.files.items():
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == digest
    with pytest.raises(PermissionDenied):
        Services(production).deploy.deploy(Caller("alice"), "docker", "readmission", tmp_path / "denied")
    assert not (tmp_path / "denied").exists() or not any((tmp_path / "denied").iterdir())
    assert len(list_events(production.db, AuditFilter(action="model.deploy.denied"))) == 1


@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_the_cli_writes_a_deployment(
    production: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(production.settings.home))
    log_in(production, "ming")
    out = tmp_path / "deploy"
    code, stdout, err = run(["deploy", "kubernetes", "readmission@champion", "--out", str(out), "--json"], capsys)
    doc = json.loads(stdout)
    assert code == 0 and doc["version"] == 1 and "kubernetes/deployment.yaml" in doc["files"], err
    code, _, err = run(["deploy", "docker", "readmission", "--out", str(out)], capsys)
    assert code != 0 and "not empty" in err and "--force" in err and "Traceback" not in err
    code, _, err = run(["deploy", "helm", "readmission", "--out", str(tmp_path / "h")], capsys)
    assert code != 0 and "docker, kubernetes" in err
    code, stdout, _ = run(["deploy", "--help"], capsys)
    assert code == 0 and "Examples" in stdout


@pytest.mark.slow
@pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)
def test_the_image_steps_run_in_a_fresh_venv(production: Workspace, tmp_path: Path) -> None:
    """The Dockerfile's steps without docker: a new venv, medops installed from a wheel as the image
    installs it, and the image's whole entrypoint run from that venv: the start check, then the server
    on the baked-in bundle file, answering a token while the artifact store no longer holds the bundle."""
    import site

    source = tmp_path / "source"  # a copy: building leaves nothing in the working tree
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    out = tmp_path / "image"
    result = _deploy(production, "docker", out, wheel=next((tmp_path / "dist").glob("medops-*.whl")))
    assert any(path.startswith("wheels/medops-") for path in result.files)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The third-party packages come from this environment, where they are installed already; medops from the wheel only.
    Path(target, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    wheel = next((out / "wheels").glob("medops-*.whl"))
    subprocess.run(
        # --ignore-installed: the development install seen through deps.pth must not stand in for the wheel
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--ignore-installed",
            "-q",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    info = versions.get(production, "readmission", 1)
    entry = dep.entrypoint(info)
    local = {
        f"{dep.HOME}/{dep.bundle_file(info)}": str(out / dep.bundle_file(info)),
        dep.KEY_FILE: str(out / "model" / "bundle.pub"),
    }
    command = [local.get(part, part) for part in entry]
    command[0] = str(python)
    serve = len(dep.START_CHECK)
    command[serve] = str(env_dir / "bin" / entry[serve])  # the console script the image runs
    port = _free_port()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    # The artifact store loses the bundle: only the baked-in copy can be what the container serves.
    stored = production.artifacts.local_path(info.artifact_sha256)
    stored.chmod(0o600)
    stored.unlink()
    production.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    _, token = Services(production).identity.create_token(Caller("admin", channel="token"), "ehr", username="pat")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MEDOPS_HOME"] = str(production.settings.home)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(1200):  # bounded wait until the server answers
            try:
                if http.get("/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()[1]
            time.sleep(0.05)
        described = http.get("/v1/models/readmission").json()
        assert (described["version"], described["bundle_sha256"]) == (1, info.artifact_sha256)
        answer = http.post("/v1/models/readmission/predict", json=described["example"])
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["bundle_sha256"] == info.artifact_sha256
    finally:
        http.close()
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "verified (readmission:1)" in err  # the start check ran first, in the same process
    assert "Traceback" not in err
    where = subprocess.run([python, "-c", "import medops; print(medops.__file__)"], **_io(env))
    assert where.stdout.strip().startswith(target)  # the wheel's medops, not the source tree's


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_project_s_schedules_become_valid_cronjobs(production: Workspace, tmp_path: Path) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    from medops.evaluation.governing import project_path
    from medops.services.projects.templates import TEMPLATES_DIR

    path = project_path(production.settings)
    folder = path.parent
    (folder / "contracts").mkdir(exist_ok=True)
    for contract in (TEMPLATES_DIR / "readmission" / "contracts").iterdir():
        (folder / "contracts" / contract.name).write_text(contract.read_text())
    text = (TEMPLATES_DIR / "readmission" / "medops.yaml").read_text()
    path.write_text(
        text + "\nschedules:\n  nightly: {cron: '0 2 * * *', timezone: Europe/Paris, steps: [ingest, train]}\n"
        "  weekly: {cron: '30 6 * * mon'}\n"
    )
    out = tmp_path / "k8s"
    result = _deploy(production, "kubernetes", out, namespace="clinical-ml")
    nightly = yaml.safe_load((out / "kubernetes" / "cronjob-nightly.yaml").read_text())
    weekly = yaml.safe_load((out / "kubernetes" / "cronjob-weekly.yaml").read_text())
    config = yaml.safe_load((out / "kubernetes" / "project-configmap.yaml").read_text())
    for doc in (nightly, weekly, config):
        kv.validate(doc, "1.30.0", strict=True)
    assert nightly["spec"]["schedule"] == "0 2 * * *" and nightly["spec"]["timeZone"] == "Europe/Paris"
    assert weekly["spec"]["timeZone"] == "UTC" and nightly["spec"]["concurrencyPolicy"] == "Forbid"
    job = nightly["spec"]["jobTemplate"]["spec"]
    container = job["template"]["spec"]["containers"][0]
    assert container["image"] == result.image and job["backoffLimit"] == 0
    assert container["command"][:4] == ["medops", "run", "ingest", "train"]
    assert "--trigger" in container["command"] and "schedule:nightly" in container["command"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {e["name"] for e in container["env"]} == {"MEDOPS_HOME", "MEDOPS_TOKEN", "MEDOPS_PSEUDONYM_KEY"}
    assert all("valueFrom" in e for e in container["env"] if e["name"] != "MEDOPS_HOME")  # secrets by reference
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/project", "/workspace", "/project/raw"} <= mounted
    assert set(config["data"]) == {"medops.yaml", *(f"contracts_{c}" for c in
                                   ("encounters.yaml", "medications.yaml", "observations.yaml", "patients.yaml",
                                    "readmission_labels.yaml"))}  # fmt: skip
    assert "cronjob-nightly.yaml" in "".join(result.files)
    assert PSEUDONYM_KEY not in "".join(p.read_text() for p in (out / "kubernetes").iterdir())
