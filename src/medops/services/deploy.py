"""Deployment files for a registered model, as its users ask for them (`medops deploy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medops.caller import Caller
from medops.platform import Platform
from medops.services.server_deploy import ServerDeployment
from medops.serving.deploy import DeployResult, deploy
from medops.version import __version__


class DeployService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def deploy(
        self,
        caller: Caller,
        target: str,
        ref: str,
        out: Path,
        *,
        force: bool = False,
        image: str | None = None,
        namespace: str = "default",
        replicas: int = 2,
        wheel: Path | None = None,
    ) -> DeployResult:
        """Write a Dockerfile (and for ``kubernetes`` the manifests) with the verified bundle; audited.
        For ``kubernetes``, the schedules of the workspace's project file become CronJobs."""
        return deploy(
            self.platform,
            target,
            ref,
            out,
            actor=caller.user,
            force=force,
            image=image,
            namespace=namespace,
            replicas=replicas,
            wheel=wheel,
            extra=lambda image: self.schedule_manifests(image, namespace),
        )

    def server(
        self,
        caller: Caller,
        out: Path,
        *,
        force: bool = False,
        image: str | None = None,
        namespace: str = "default",
        replicas: int = 2,
        wheel: Path | None = None,
    ) -> ServerDeployment:
        """Write the platform server's image recipe and Kubernetes objects (ml_engineer or admin); audited."""
        from medops.identity import Role
        from medops.services import server_deploy
        from medops.serving.deploy import medops_wheel

        chosen = image or f"{server_deploy.NAME}:{__version__}"
        files, warnings = server_deploy.build_files(
            self.platform.settings, image=chosen, namespace=namespace, replicas=replicas
        )
        if wheel is not None:
            files[f"wheels/{wheel.name}"] = medops_wheel(wheel)
        roles = {Role.ML_ENGINEER, Role.ADMIN}
        with self.platform.users.authorized(caller.user, "server.deploy", "workspace", "-", roles) as ch:
            written = server_deploy.write(out, files, force=force)
            ch.after = {"image": chosen, "folder": out.name, "files": written, "warnings": warnings}
        return ServerDeployment(out, chosen, written, warnings)

    def schedule_manifests(self, image: str, namespace: str) -> dict[str, dict[str, Any]]:
        """A CronJob per schedule of the governing project file, and the ConfigMap of that file and its
        contracts (none when the workspace has no project file or it declares no schedules)."""
        from medops.evaluation.governing import governing_section
        from medops.pipelines.cronjobs import cronjob, project_configmap
        from medops.pipelines.schedules import Schedule
        from medops.services.projects.project import load_project

        found = governing_section(self.platform, "schedules")
        if found is None or not found[1]:  # no project file, or one without schedules (a policy alone, say)
            return {}
        path = found[0]
        project = load_project(path)
        spec = project.spec
        files = {"medops.yaml": path.read_text(encoding="utf-8")}
        for relative in spec.contracts.values():
            files[relative] = project.resolve(relative).read_text(encoding="utf-8")
        if spec.features_file:
            files[spec.features_file] = project.resolve(spec.features_file).read_text(encoding="utf-8")
        dirs = sorted({Path(s.path).parts[0] for s in spec.sources.values() if s.path and len(Path(s.path).parts) > 1})
        out: dict[str, dict[str, Any]] = {"project-configmap.yaml": project_configmap(spec.name, namespace, files)}
        for name, s in spec.schedules.items():
            schedule = Schedule(name, s.cron, s.timezone, tuple(s.steps))
            out[f"cronjob-{name}.yaml"] = cronjob(
                spec.name, schedule, image=image, namespace=namespace, files=files, source_dirs=dirs
            )
        return out
