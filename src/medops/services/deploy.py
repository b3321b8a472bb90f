"""Deployment files for a registered model, as its users ask for them (`medops deploy`)."""

from __future__ import annotations

from pathlib import Path

from medops.caller import Caller
from medops.platform import Platform
from medops.serving.deploy import DeployResult, deploy


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
        """Write a Dockerfile (and for ``kubernetes`` the manifests) with the verified bundle; audited."""
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
        )
