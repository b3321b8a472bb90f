"""Feature views, the offline and online stores, and point-in-time training sets."""

from medops.features.store import AppliedView, CheckReport, FeatureStore, OnlineResult, list_applied
from medops.features.views import (
    Feature,
    FeatureSet,
    FeaturesSpec,
    FeatureView,
    FeatureViewError,
    OnDemandFeature,
    views_from_spec,
)

__all__ = [
    "AppliedView",
    "CheckReport",
    "Feature",
    "FeatureSet",
    "FeatureStore",
    "FeatureView",
    "FeatureViewError",
    "FeaturesSpec",
    "OnDemandFeature",
    "OnlineResult",
    "list_applied",
    "views_from_spec",
]
