"""Kubernetes CronJobs for a project's schedules: the cluster runs `medops run` instead of `medops scheduler`.

Each schedule is a CronJob (its cron and time zone, one run at a time, no retry: the next due
time resumes a failed run from its first unfinished step). The project file and its contracts
are a ConfigMap mounted read-only at /project; the source files are a read-only volume claim
mounted where the project file expects them; the workspace (its medops.toml, naming the
PostgreSQL database and the artifact store) and the credentials (an API token, the
pseudonymization key) come from Secrets the cluster's operator creates: no secret is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from medops.credentials import TOKEN_ENV
from medops.pipelines.schedules import Schedule
from medops.serving.deploy import container_security, pod_security

PROJECT_DIR = "/project"
WORKSPACE_DIR = "/workspace"
WORKSPACE_SECRET = "medops-workspace"  # keys: medops.toml
CREDENTIALS_SECRET = "medops-pipeline"  # keys: token (MEDOPS_TOKEN), pseudonym-key (MEDOPS_PSEUDONYM_KEY)
SOURCES_CLAIM = "medops-sources"


def _dns(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:52]


def configmap_key(relative: str) -> str:
    """A file's key in the project ConfigMap (keys can't hold '/')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", relative)


def project_configmap(project: str, namespace: str, files: Mapping[str, str]) -> dict[str, Any]:
    """The project file and its contracts, by path relative to the project folder."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{_dns(project)}-project", "namespace": namespace, "labels": _labels(project)},
        "data": {configmap_key(path): text for path, text in sorted(files.items())},
    }


def _labels(project: str, schedule: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": _dns(project),
        "app.kubernetes.io/component": "pipeline",
        "app.kubernetes.io/managed-by": "medops",
        "medops.io/project": project,
    }
    return {**labels, "medops.io/schedule": schedule} if schedule else labels


def cronjob(
    project: str,
    schedule: Schedule,
    *,
    image: str,
    namespace: str,
    files: Mapping[str, str],
    source_dirs: list[str],
) -> dict[str, Any]:
    """One schedule as a CronJob running `medops run` of its steps, with the trigger ``schedule:NAME``."""
    command = ["medops", "run", *schedule.steps, "--project", f"{PROJECT_DIR}/medops.yaml"]
    command += ["--trigger", f"schedule:{schedule.name}", "--reason", f"schedule {schedule.name} ({schedule.cron})"]
    secret = {"name": CREDENTIALS_SECRET}
    mounts = [
        {"name": "project", "mountPath": PROJECT_DIR, "readOnly": True},
        {"name": "workspace", "mountPath": WORKSPACE_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        *({"name": "sources", "mountPath": f"{PROJECT_DIR}/{d}", "subPath": d, "readOnly": True} for d in source_dirs),
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "project",
            "configMap": {
                "name": f"{_dns(project)}-project",
                "items": [{"key": configmap_key(p), "path": p} for p in sorted(files)],
            },
        },
        {"name": "workspace", "secret": {"secretName": WORKSPACE_SECRET}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
    ]
    if source_dirs:
        volumes.append({"name": "sources", "persistentVolumeClaim": {"claimName": SOURCES_CLAIM, "readOnly": True}})
    container = {
        "name": "pipeline",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "workingDir": PROJECT_DIR,
        "env": [
            {"name": "MEDOPS_HOME", "value": WORKSPACE_DIR},
            {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {**secret, "key": "token"}}},
            {"name": "MEDOPS_PSEUDONYM_KEY", "valueFrom": {"secretKeyRef": {**secret, "key": "pseudonym-key"}}},
        ],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": f"{_dns(project)}-{_dns(schedule.name)}"[:52],
            "namespace": namespace,
            "labels": _labels(project, schedule.name),
        },
        "spec": {
            "schedule": schedule.cron,
            "timeZone": schedule.timezone,
            "concurrencyPolicy": "Forbid",  # one run of a project at a time (medops's lease says so too)
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {
                "metadata": {"labels": _labels(project, schedule.name)},
                "spec": {
                    "backoffLimit": 0,  # no blind retry: the next due time resumes from the first unfinished step
                    "template": {
                        "metadata": {"labels": _labels(project, schedule.name)},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "securityContext": pod_security(),
                            "containers": [container],
                            "volumes": volumes,
                        },
                    },
                },
            },
        },
    }
