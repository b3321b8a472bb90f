"""Application services: one per capability, the only entry the adapters use.

Every public operation takes the Caller that acts, authorizes inside the same transaction
as its change, and returns a typed result whose ``to_json()`` is the one JSON form the CLI
and the servers print. Services hold no per-caller state, so one instance serves a whole
process (see Services, built once per platform).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medops.platform import Platform
    from medops.services.audit import AuditService
    from medops.services.data import DataService
    from medops.services.deploy import DeployService
    from medops.services.evaluation import EvaluationService
    from medops.services.evidence import EvidenceService
    from medops.services.features import FeatureService
    from medops.services.identity import IdentityService
    from medops.services.lineage import LineageService
    from medops.services.monitoring import MonitoringService
    from medops.services.pipelines import PipelineService
    from medops.services.predictions import PredictionService
    from medops.services.registry import RegistryService
    from medops.services.serving import ServingService
    from medops.services.training import TrainingService


class Services:
    """The services of one platform, each built on first use (a command loads only its own)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    @cached_property
    def audit(self) -> AuditService:
        from medops.services.audit import AuditService

        return AuditService(self.platform)

    @cached_property
    def data(self) -> DataService:
        from medops.services.data import DataService

        return DataService(self.platform)

    @cached_property
    def deploy(self) -> DeployService:
        from medops.services.deploy import DeployService

        return DeployService(self.platform)

    @cached_property
    def evaluation(self) -> EvaluationService:
        from medops.services.evaluation import EvaluationService

        return EvaluationService(self.platform)

    @cached_property
    def evidence(self) -> EvidenceService:
        from medops.services.evidence import EvidenceService

        return EvidenceService(self)

    @cached_property
    def features(self) -> FeatureService:
        from medops.services.features import FeatureService

        return FeatureService(self.platform)

    @cached_property
    def identity(self) -> IdentityService:
        from medops.services.identity import IdentityService

        return IdentityService(self.platform)

    @cached_property
    def lineage(self) -> LineageService:
        from medops.services.lineage import LineageService

        return LineageService(self.platform)

    @cached_property
    def monitoring(self) -> MonitoringService:
        from medops.services.monitoring import MonitoringService

        return MonitoringService(self.platform)

    @cached_property
    def pipelines(self) -> PipelineService:
        from medops.services.pipelines import PipelineService

        return PipelineService(self.platform)

    @cached_property
    def predictions(self) -> PredictionService:
        from medops.services.predictions import PredictionService

        return PredictionService(self.platform)

    @cached_property
    def registry(self) -> RegistryService:
        from medops.services.registry import RegistryService

        return RegistryService(self.platform)

    @cached_property
    def serving(self) -> ServingService:
        from medops.services.serving import ServingService

        return ServingService(self.platform)

    @cached_property
    def training(self) -> TrainingService:
        from medops.services.training import TrainingService

        return TrainingService(self.platform)


__all__ = ["Services"]
