"""medops: MLOps for healthcare and life sciences, with governance built in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from medops.client import RemoteRun
    from medops.registry.predictor import Predictor
    from medops.training.tracking import Run


def __getattr__(name: str) -> Any:
    """``medops.__version__``, read from the installed metadata on first use; ``medops.Client`` on first use."""
    if name == "Client":
        from medops.client import Client

        return Client
    if name == "__version__":
        from medops.version import installed_version

        return installed_version()
    raise AttributeError(f"module 'medops' has no attribute {name!r}")


__all__ = ["Client", "__version__", "load_model", "start_run"]


def start_run(experiment: str, name: str | None = None, **kwargs: Any) -> Run | RemoteRun:
    """Open a tracked run in the current workspace: ``with medops.start_run("readmission") as run:``.

    With MEDOPS_SERVER_URL set, the run is opened on that platform server with MEDOPS_TOKEN (an API
    token), and logged there in batches, as a local run is logged to the database.

    The run is made by the user a verified credential proves, as for the CLI: MEDOPS_TOKEN (an
    API token), else the session of `medops login` in this workspace. A name alone (MEDOPS_USER,
    an ``actor=``) grants nothing.
    """
    import os

    from medops.credentials import presented
    from medops.errors import InvalidInput
    from medops.services.identity import IdentityService
    from medops.training.tracking import Tracker
    from medops.workspace import Workspace

    if "actor" in kwargs:
        raise InvalidInput(
            "start_run acts as the logged-in user (medops login) or MEDOPS_TOKEN's owner; it takes no actor="
        )
    if os.environ.get("MEDOPS_SERVER_URL"):  # the platform server logs it; the database stays behind it
        from medops.client import Client

        return Client.from_environment().start_run(experiment, name, **kwargs)
    ws = Workspace.open()
    try:
        caller = IdentityService(ws).caller(presented(ws.settings), writes=True)
        return Tracker(ws).start_run(experiment, name, owns_workspace=True, actor=caller.user, **kwargs)
    except BaseException:
        ws.close()
        raise


def load_model(ref: str | tuple[str, int] | Path) -> Predictor:
    """A verified predictor: ``medops.load_model("readmission_30d:2")`` or a bundle file's path.

    The bundle's signature and checksums are checked before the model is loaded; ``predict``
    and ``predict_proba`` refuse inputs outside what the model was trained on.
    """
    from medops.registry.predictor import load_model as load
    from medops.workspace import Workspace

    with Workspace.open() as ws:
        return load(ws, ref)
