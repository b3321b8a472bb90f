"""Deployment files for the platform server (`medops deploy server`): an image that runs
`medops server`, and Kubernetes objects around it.

A model server's image carries its bundle; the platform server's carries nothing of the
workspace. The workspace's settings come from a ConfigMap (its medops.toml, with the key files
pointed at a mounted Secret) and the secrets from Secrets the operator makes: the signing and
pseudonym keys, the database password (libpq's PGPASSWORD), the identity provider's client
secret. Every replica shares the stores, so a workspace on SQLite or a local folder is written
out with a warning: it can't be shared by pods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medops.config import Settings
from medops.errors import InvalidInput
from medops.serving.deploy import (
    USER_ID,
    autoscaler,
    check_out,
    cluster_service,
    container_security,
    disruption_budget,
    healthcheck,
    image_base,
    install_files,
    pod_security,
    probe,
    to_yaml,
    write_generated,
)
from medops.version import __version__

NAME = "medops-server"
PORT = 8080
WORKSPACE_DIR = "/etc/medops/workspace"
KEYS_DIR = "/etc/medops/keys"
KEY_FILES = {"signing_key_file": "signing.ed25519", "pseudonym_key_file": "pseudonym.key"}
SECRETS = {"keys": "medops-keys", "database": "medops-database", "oidc": "medops-oidc"}


@dataclass(frozen=True)
class ServerDeployment:
    out: Path
    image: str
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": "server",
            "image": self.image,
            "out": str(self.out),
            "files": self.files,
            "warnings": self.warnings,
        }


def dockerfile() -> str:
    return f"""\
# The medops {__version__} platform server (medops server). The workspace's settings and keys are
# mounted at run time (Kubernetes: the ConfigMap and Secrets of kubernetes/); nothing of the
# workspace is baked into the image.
# Build:  docker build -t {NAME}:{__version__} .
{image_base(f"MEDOPS_HOME={WORKSPACE_DIR}")}
USER {USER_ID}:{USER_ID}
WORKDIR /tmp
EXPOSE {PORT}
{healthcheck()}ENTRYPOINT ["medops", "server", "--host", "0.0.0.0", "--port", "{PORT}"]
"""


def pod_settings(settings: Settings) -> tuple[str, list[str]]:
    """The workspace's medops.toml as a pod reads it (key files in the mounted Secret), and what in it
    can't serve several pods."""
    text = settings.config_path.read_text()
    for setting, file_name in KEY_FILES.items():
        line = f'{setting} = "{KEYS_DIR}/{file_name}"'
        pattern = re.compile(rf"^{setting}\s*=.*$", re.M)
        text = pattern.sub(line, text) if pattern.search(text) else text.rstrip("\n") + f"\n{line}\n"
    warnings = []
    if not settings.metadata_url.startswith("postgresql"):
        warnings.append("the metadata store is SQLite: pods can't share it; set metadata_url to PostgreSQL")
    elif re.search(r"//[^/@]*:[^/@]*@", settings.metadata_url):
        warnings.append("metadata_url holds a password, now in the ConfigMap: give it as PGPASSWORD (a Secret)")
    if "://" not in settings.artifact_root or settings.artifact_root.startswith(("file://", "memory://")):
        warnings.append("the artifact store is local to one machine: set artifact_root to an object store (s3://)")
    return text, warnings


def manifests(settings_text: str, *, image: str, namespace: str, replicas: int) -> dict[str, dict[str, Any]]:
    """The Kubernetes objects, by file name."""
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "platform-api"}
    labels["app.kubernetes.io/managed-by"] = "medops"
    selector = {"app.kubernetes.io/name": NAME}
    meta = {"name": NAME, "namespace": namespace, "labels": labels}

    def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}

    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**meta, "name": "medops-workspace"},
        "data": {"medops.toml": settings_text},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "terminationGracePeriodSeconds": 40,  # the server's own 30 s for requests in flight, then out
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["--workers", "2", "--graceful-seconds", "30"],
                            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                            "env": [
                                {"name": "MEDOPS_HOME", "value": WORKSPACE_DIR},
                                secret_env("PGPASSWORD", SECRETS["database"], "password"),
                                secret_env("MEDOPS_OIDC_CLIENT_SECRET", SECRETS["oidc"], "client-secret"),
                            ],
                            "startupProbe": probe("/healthz", 5, 24),
                            "livenessProbe": probe("/healthz", 10, 3),
                            "readinessProbe": probe("/readyz", 5, 3),
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"cpu": "2", "memory": "2Gi"},
                            },
                            "securityContext": container_security(),
                            "volumeMounts": [
                                {"name": "workspace", "mountPath": WORKSPACE_DIR, "readOnly": True},
                                {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "workspace", "configMap": {"name": "medops-workspace"}},
                        {"name": "keys", "secret": {"secretName": SECRETS["keys"], "defaultMode": 0o400}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                },
            },
        },
    }
    service = cluster_service(meta, selector)
    hpa = autoscaler(meta, NAME, replicas, max(replicas, 6))
    network = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            # Default deny: the reverse proxy (ingress controller) pods, labelled as its clients, and nothing else.
            "ingress": [
                {
                    "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"medops.io/client-of": NAME}}}],
                    "ports": [{"protocol": "TCP", "port": PORT}],
                }
            ],
            # Out: names, PostgreSQL, Redis, and HTTPS (the object store, the identity provider).
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6379}]},
                {"ports": [{"protocol": "TCP", "port": 443}]},
            ],
        },
    }
    pdb = disruption_budget(meta, selector)
    return {
        "configmap.yaml": config,
        "deployment.yaml": deployment,
        "service.yaml": service,
        "hpa.yaml": hpa,
        "networkpolicy.yaml": network,
        "pdb.yaml": pdb,
    }


def build_files(settings: Settings, *, image: str, namespace: str, replicas: int) -> tuple[dict[str, bytes], list[str]]:
    if replicas < 1:
        raise InvalidInput("--replicas must be at least 1")
    settings_text, warnings = pod_settings(settings)
    keys = " ".join(f"--from-file={name}=<the workspace's {setting}>" for setting, name in KEY_FILES.items())
    files = {
        "Dockerfile": dockerfile(),
        **install_files(),
        "kubernetes/README.txt": "Make the Secrets the Deployment mounts before applying these files:\n"
        f"  kubectl -n {namespace} create secret generic {SECRETS['keys']} {keys}\n"
        f"  kubectl -n {namespace} create secret generic {SECRETS['database']} --from-literal=password=...\n"
        f"  kubectl -n {namespace} create secret generic {SECRETS['oidc']} --from-literal=client-secret=...  "
        "(with an identity provider)\n"
        "Then: kubectl apply -f kubernetes/\n",
    }
    for name, doc in manifests(settings_text, image=image, namespace=namespace, replicas=replicas).items():
        files[f"kubernetes/{name}"] = to_yaml(doc)
    return {path: text.encode("utf-8") for path, text in files.items()}, warnings


def write(out: Path, files: dict[str, bytes], *, force: bool) -> dict[str, str]:
    check_out(out, force=force)
    out.mkdir(parents=True, exist_ok=True)
    return dict(sorted(write_generated(out, files).items()))
