"""Deployment files for one registered model: a container image recipe and Kubernetes manifests.

What a hospital's IT team runs is built from what the registry verified: the bundle is read
through the registry's verifying reader, copied byte for byte into the build context with the
workspace's public key, verified again while the image is built and once more each time a
container starts (``medops.serving.container``); the server then serves that file, the one
verified, not a copy from the artifact store (``medops serve BUNDLE_FILE``). The image runs
as a non-root user and writes only to the volumes named here, so it runs on a read-only root
filesystem; the manifests
carry the same hardening (non-root, no capabilities, no privilege escalation, probes,
resources), an autoscaler, a disruption budget and a default-deny network policy.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from medops.atomic import write_atomic_bytes
from medops.data.sources import file_sha256
from medops.errors import Conflict, IntegrityError, InvalidInput
from medops.registry.versions import VersionInfo
from medops.version import __version__

if TYPE_CHECKING:
    from medops.platform import Platform
from medops.serving.models import resolve_ref

TARGETS = ("docker", "kubernetes")
PORT = 8080
HOME = "/opt/medops"  # the image's read-only application folder: the bundle and its key
MODEL_DIR = f"{HOME}/model"
KEY_FILE = f"{MODEL_DIR}/bundle.pub"
WRITABLE = ("/tmp", "/var/lib/medops")  # the only folders a container writes: volumes or tmpfs, never the image
SPOOL = "/var/lib/medops/spool"  # the prediction log's spool (prediction_spool): answers kept before they are sent
USER_ID = 10001
BASE_IMAGE = "python:3.11-slim"
# What a container runs once its bundle is verified. One constant, so the serving command can change in one place;
# "{bundle}" is the baked-in bundle's path.
# The server serves the baked-in bundle file itself, never a copy from the artifact store: it verifies it again
# against the workspace's keys and checks it is the registered version (the workspace's settings, for the
# metadata store that holds the registry and the API tokens, come from MEDOPS_HOME and the environment).
SERVE_COMMAND = ("medops", "serve", "{bundle}", "--host", "0.0.0.0", "--port", str(PORT))
START_CHECK = ("python", "-m", "medops.serving.container", "{bundle}", KEY_FILE, "--")


@dataclass(frozen=True)
class DeployResult:
    target: str
    model: str
    version: int
    stage: str
    bundle_sha256: str
    out: Path
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 of what was written
    image: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "bundle_sha256": self.bundle_sha256,
            "image": self.image,
            "out": str(self.out),
            "files": self.files,
        }


def deployment_name(model: str) -> str:
    """A Kubernetes object name (DNS label): lowercase letters, digits and '-'."""
    return ("medops-" + model.replace("_", "-"))[:63].rstrip("-")


def bundle_file(info: VersionInfo) -> str:
    return f"model/{info.model}-{info.version}.medops"


def entrypoint(info: VersionInfo) -> list[str]:
    """The container's whole command: the start check, then the serving command."""
    bundle = f"{HOME}/{bundle_file(info)}"
    return [part.format(bundle=bundle) for part in (*START_CHECK, *SERVE_COMMAND)]


# --- the pinned environment ------------------------------------------------------------------
def pinned_requirements(root: str = "medops") -> list[str]:
    """``name==version`` for every distribution ``root`` needs at run time, as installed here.

    The image then installs exactly what was tested with; the extras medops asks for (for
    example ``psycopg[binary]``) are followed too.
    """
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (_canonical(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python, not installed here
        canonical = _canonical(dist.metadata["Name"])
        if canonical != _canonical(root):
            pins[canonical] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = [req.marker is None] + [
                req.marker.evaluate({"extra": e}) for e in (extras or {""}) if req.marker is not None
            ]
            if any(wanted):
                todo.append((req.name, frozenset(req.extras)))
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- the files -------------------------------------------------------------------------------
def image_base(env: str) -> str:
    """A medops image's first layers: the base, the environment (plus ``env``), a non-root user, and medops
    installed from the pinned requirements (and wheels/ when no index has it)."""
    return f"""FROM {BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    HOME=/tmp \\
    {env}

RUN groupadd --system --gid {USER_ID} medops \\
 && useradd --system --uid {USER_ID} --gid medops --home-dir /nonexistent --no-create-home \\
      --shell /usr/sbin/nologin medops

# The exact versions this deployment was written with; medops itself from wheels/ when no index has it.
COPY requirements.txt /tmp/build/requirements.txt
COPY wheels/ /tmp/build/wheels/
RUN pip install --find-links /tmp/build/wheels -r /tmp/build/requirements.txt "medops=={__version__}" \\
 && rm -rf /tmp/build
"""


def healthcheck() -> str:
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/healthz', timeout=2)"
    return f"""HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \\
  CMD ["python", "-c", "{probe}"]
"""


def install_files() -> dict[str, str]:
    """The files a medops image installs from: the pinned requirements and a place for medops's wheel."""
    return {
        "requirements.txt": "# Pinned from the environment that wrote this deployment.\n"
        + "\n".join(pinned_requirements())
        + "\n",
        "wheels/README.txt": f"Put the medops {__version__} wheel here when your package index has none:\n"
        "  pip wheel --no-deps -w wheels/ <medops source folder>\n",
    }


def dockerfile(info: VersionInfo) -> str:
    bundle = bundle_file(info)
    command = ", ".join(f'"{part}"' for part in entrypoint(info))
    check = ", ".join(f'"{part}"' for part in START_CHECK[:3]) + f', "{HOME}/{bundle}", "{KEY_FILE}"'
    volumes = ", ".join(f'"{w}"' for w in WRITABLE)
    return f"""\
# The model {info.ref} (bundle sha256:{info.artifact_sha256}) served by medops {__version__}.
# Build:  docker build -t {deployment_name(info.model)}:{info.version} .
# Run:    docker run --read-only --tmpfs /tmp -v medops-spool:/var/lib/medops -p {PORT}:{PORT} \\
#           {deployment_name(info.model)}:{info.version}
# The root filesystem may be read-only: the container writes only to {" and ".join(WRITABLE)}.
# {SPOOL} holds each prediction until the metadata store does: a volume that outlives the container.
{image_base(f"MEDOPS_PREDICTION_SPOOL={SPOOL}")}
# The verified bundle and the public key it is checked against, owned by root and read-only to the server.
COPY --chmod=0444 {bundle} {HOME}/{bundle}
COPY --chmod=0444 model/bundle.pub {KEY_FILE}
RUN [{check}, "--", "true"]

RUN mkdir -p {" ".join(WRITABLE[1:])} && chown {USER_ID}:{USER_ID} {" ".join(WRITABLE[1:])}
VOLUME [{volumes}]
USER {USER_ID}:{USER_ID}
WORKDIR /tmp
EXPOSE {PORT}
{healthcheck()}# The bundle is verified again at every start, then the server replaces the check.
ENTRYPOINT [{command}]
"""


def dockerignore() -> str:
    return """\
# Only the files the Dockerfile copies go into the build context.
*
!Dockerfile
!requirements.txt
!wheels/
!model/
"""


def _labels(info: VersionInfo) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": deployment_name(info.model),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "medops",
        "medops.io/model": info.model,
        "medops.io/version": str(info.version),
    }


def pod_security() -> dict[str, Any]:
    """A pod's security context: a fixed non-root user, the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """A container's: no privilege, no capability, a read-only root filesystem."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    """An HTTP probe on the container's ``http`` port."""
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def cluster_service(meta: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    """Port 80 inside the cluster to the pods' ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(meta: dict[str, Any], deployment: str, replicas: int, most: int) -> dict[str, Any]:
    """From ``replicas`` up to ``most`` pods, on CPU."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": replicas,
            "maxReplicas": most,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def disruption_budget(meta: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    """One pod stays up through a voluntary disruption (a node drain)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
    }


def manifests(info: VersionInfo, *, image: str, namespace: str, replicas: int = 2) -> dict[str, dict[str, Any]]:
    """The Kubernetes objects, by file name."""
    name = deployment_name(info.model)
    labels = _labels(info)
    selector = {"app.kubernetes.io/name": name}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    annotations = {"medops.io/bundle-sha256": info.artifact_sha256}
    volumes = [path.rsplit("/", 1)[-1] for path in WRITABLE]  # tmp, medops
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**meta, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                            # the prediction spool on the pod's volume: it survives a container restart
                            "env": [{"name": "MEDOPS_PREDICTION_SPOOL", "value": SPOOL}],
                            "startupProbe": probe("/healthz", 5, 24),
                            "livenessProbe": probe("/healthz", 10, 3),
                            "readinessProbe": probe("/readyz", 5, 3),
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"cpu": "1", "memory": "1Gi"},
                            },
                            "securityContext": container_security(),
                            "volumeMounts": [
                                {"name": v, "mountPath": path} for v, path in zip(volumes, WRITABLE, strict=True)
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": volumes[0], "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                        *({"name": v, "emptyDir": {"sizeLimit": "1Gi"}} for v in volumes[1:]),
                    ],
                },
            },
        },
    }
    service = cluster_service(meta, selector)
    hpa = autoscaler(meta, name, replicas, max(replicas, 10))
    network = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            # Default deny: callers are pods labelled as clients of this model; nothing else reaches it.
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"medops.io/client-of": name}}}],
                    "ports": [{"protocol": "TCP", "port": PORT}],
                }
            ],
            # Out: name resolution, the metadata store (PostgreSQL) and the online store (Redis) only.
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6379}]},
            ],
        },
    }
    pdb = disruption_budget(meta, selector)
    return {
        "deployment.yaml": deployment,
        "service.yaml": service,
        "hpa.yaml": hpa,
        "networkpolicy.yaml": network,
        "pdb.yaml": pdb,
    }


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases: each manifest reads whole, as reviewers and kubectl diff expect."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)


# --- writing ---------------------------------------------------------------------------------
def check_out(out: Path, *, force: bool) -> None:
    """``out`` must be a new or empty folder, unless ``force``: an earlier deployment's files are not mixed in."""
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"{out} is a file, not a folder", hint="deployment files go into a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise Conflict(f"{out} is not empty", code="deploy_folder_not_empty")


def build_files(
    target: str,
    info: VersionInfo,
    *,
    public_key: str,
    image: str,
    namespace: str,
    replicas: int,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, bytes]:
    """Every generated file but the bundle itself, by path relative to the output folder; ``extra``
    manifests (the project's CronJobs) go beside the model's."""
    if target not in TARGETS:
        raise InvalidInput(f"unknown deployment target {target!r}", hint=f"one of: {', '.join(TARGETS)}")
    if replicas < 1:
        raise InvalidInput("--replicas must be at least 1")
    files = {
        "Dockerfile": dockerfile(info),
        ".dockerignore": dockerignore(),
        **install_files(),
        "model/bundle.pub": public_key.strip() + "\n",
    }
    if target == "kubernetes":
        docs = {**manifests(info, image=image, namespace=namespace, replicas=replicas), **(extra or {})}
        for name, doc in docs.items():
            files[f"kubernetes/{name}"] = to_yaml(doc)
    return {path: text.encode("utf-8") for path, text in files.items()}


def medops_wheel(path: Path) -> bytes:
    """The bytes of a medops wheel of the version pinned in the Dockerfile; any other file is refused."""
    expected = f"medops-{__version__}-"
    if not (path.name.startswith(expected) and path.name.endswith(".whl")):
        raise InvalidInput(
            f"{path.name} is not a medops {__version__} wheel",
            hint=f"the image installs medops=={__version__}: give its wheel, named {expected}*.whl",
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


def write_generated(out: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Each generated file written atomically under ``out``: relative path -> sha256 of what was written."""
    written: dict[str, str] = {}
    for relative, data in files.items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_bytes(target, data)
        written[relative] = hashlib.sha256(data).hexdigest()
    return written


def write_files(
    out: Path, files: dict[str, bytes], bundle: Path, bundle_path: str, bundle_sha256: str
) -> dict[str, str]:
    """Write each file atomically; the bundle is copied and its digest checked against the registry's."""
    written = write_generated(out, files)
    target = out / bundle_path
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(bundle, staged)
    digest = file_sha256(staged)
    if digest != bundle_sha256:
        staged.unlink(missing_ok=True)
        raise IntegrityError(f"the copied bundle's sha256 {digest[:12]} is not the registered {bundle_sha256[:12]}")
    staged.replace(target)
    written[bundle_path] = digest
    return dict(sorted(written.items()))


def deploy(
    ws: Platform,
    target: str,
    ref: str,
    out: Path,
    *,
    actor: str,
    force: bool = False,
    image: str | None = None,
    namespace: str = "default",
    replicas: int = 2,
    wheel: Path | None = None,
    extra: Callable[[str], dict[str, dict[str, Any]]] | None = None,
) -> DeployResult:
    """Write the deployment of ``ref`` into ``out``: verified first, audited as ``model.deploy``.

    ``wheel``: medops's own wheel, copied into ``wheels/`` for the image to install from.
    ``extra``: more Kubernetes objects by file name, given the image (the project's CronJobs).
    """
    from medops.registry.predictor import load_model
    from medops.registry.stages import PROMOTE_ROLES
    from medops.registry.transfer import public_key

    check_out(out, force=force)
    info = resolve_ref(ws, ref)
    load_model(ws, (info.model, info.version))  # signature, every checksum, safe types: or refused here
    chosen = image or f"{deployment_name(info.model)}:{info.version}"
    more = extra(chosen) if extra is not None and target == "kubernetes" else None
    files = build_files(
        target, info, public_key=public_key(ws), image=chosen, namespace=namespace, replicas=replicas, extra=more
    )
    if wheel is not None:
        files[f"wheels/{wheel.name}"] = medops_wheel(wheel)
    stored = ws.artifacts.local_path(info.artifact_sha256)
    with ws.users.authorized(actor, "model.deploy", "model", info.ref, PROMOTE_ROLES) as ch:
        out.mkdir(parents=True, exist_ok=True)
        written = write_files(out, files, stored, bundle_file(info), info.artifact_sha256)
        ch.after = {
            "target": target,
            "stage": info.stage,  # what the registry said of this version when it was deployed
            "image": chosen,
            "folder": out.name,
            "bundle": info.artifact_sha256,
            "files": written,
        }
    return DeployResult(target, info.model, info.version, info.stage, info.artifact_sha256, out, written, chosen)
