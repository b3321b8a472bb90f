"""Serving as a caller meets it: who may call the prediction API, and the models a server answers for.

One rule, by role: a user holding ``predictor``, ``ml_engineer`` or ``admin`` may use every
model a server serves (predict, list, describe, and the metrics unless they are opened to a
scraper). A refusal is audited like every other (``model.predict.denied``).
"""

from __future__ import annotations

from typing import Any

from medops.caller import Caller
from medops.identity.roles import Role
from medops.platform import Platform
from medops.serving.models import ServedModel, ServeSpec, load_served, parse_spec
from medops.serving.scoring import score

PREDICT_ROLES = {Role.PREDICTOR, Role.ML_ENGINEER, Role.ADMIN}


class ServingService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def load(self, specs: list[str]) -> dict[str, ServedModel]:
        """Each spec's version, verified; a name served twice is refused (a request names only the model)."""
        from medops.errors import InvalidInput

        parsed: list[ServeSpec] = [parse_spec(s) for s in specs]
        if not parsed:
            raise InvalidInput("name at least one model to serve", hint="a model is NAME, NAME@ALIAS or NAME:VERSION")
        names = [p.name for p in parsed]
        if len(set(names)) != len(names):
            raise InvalidInput("a model is named twice", hint="serve each model once: NAME, NAME@ALIAS or NAME:VERSION")
        return {p.name: load_served(self.platform, p) for p in parsed}

    def authorize(self, caller: Caller) -> None:
        """PermissionDenied unless the caller may use the prediction API (see the module's rule)."""
        self.platform.users.require_role(caller.user, "model.predict", PREDICT_ROLES)

    def predict(self, caller: Caller, model: ServedModel, records: list[Any]) -> list[dict[str, Any]]:
        """The answer for each record; the caller was authorized when the request came in."""
        return score(model, records)

    def database_reachable(self) -> bool:
        from sqlalchemy import text

        try:
            with self.platform.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # readiness reports, it never raises: the probe only needs yes or no
            return False
        return True
