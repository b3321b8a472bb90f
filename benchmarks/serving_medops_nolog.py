"""medops's serving app with the prediction log off, for bench_serving to measure what logging costs.

`medops serve` has no switch to turn the log off (every answer a server gives is logged); this
builds the same app `medops serve NAME` builds, from the workspace of MEDOPS_HOME, with
``ServerOptions(prediction_log=False)``. Run by uvicorn as
``benchmarks.serving_medops_nolog:create --factory``; ``BENCH_MEDOPS_MODEL`` names the model.
"""

from __future__ import annotations

import os
from typing import Any

MODEL_ENV = "BENCH_MEDOPS_MODEL"


def create() -> Any:
    from medops.server.app import create_app
    from medops.server.guard import ServerOptions
    from medops.services import Services
    from medops.workspace import Workspace

    services = Services(Workspace.open())
    models = services.serving.load([os.environ[MODEL_ENV]])
    return create_app(services, models, ServerOptions(prediction_log=False))
