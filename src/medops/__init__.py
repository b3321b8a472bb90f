"""medops: MLOps for healthcare and life sciences, with governance built in."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from medops.client import RemoteRun
    from medops.config import Settings
    from medops.identity.admissions import Admissions
    from medops.registry.predictor import Predictor
    from medops.training.tracking import Run, Tracker


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

    if "actor" in kwargs:
        raise InvalidInput(
            "start_run acts as the logged-in user (medops login) or MEDOPS_TOKEN's owner; it takes no actor="
        )
    if os.environ.get("MEDOPS_SERVER_URL"):  # the platform server logs it; the database stays behind it
        from medops.client import Client

        return Client.from_environment().start_run(experiment, name, **kwargs)
    tracker, credentials = _process_tracker()
    credential = presented(tracker.ws.settings)  # asked every run: a new token in the environment counts
    if credential is None:
        IdentityService(tracker.ws).caller(None, writes=True)  # refuses: a run is a change
        raise AssertionError("unreachable")
    caller = credentials.admit(credential.secret)
    return tracker.start_run(experiment, name, actor=caller.user, **kwargs)


_TRACKERS: dict[tuple[int, Settings], tuple[Tracker, Admissions]] = {}
_LOCK = threading.Lock()


def _process_tracker() -> tuple[Tracker, Admissions]:
    """The workspace and tracker this process's runs and loads share, per workspace: opened by the first (the
    schema checked, the environment lock stored) and reused by the next ones, whose cost is then the
    run's own; closed when the process exits. A forked child opens its own (the key holds the pid).

    With them, the credentials checked in full, each remembered while no user or token event is newer
    than its check (medops.identity.admissions): a revoked token or a disabled user is refused at the
    next run, and the run's own role check still reads the user's row inside its transaction."""
    import atexit
    import os

    from medops.config import load_settings
    from medops.services.identity import IdentityService
    from medops.training.tracking import Tracker
    from medops.workspace import Workspace

    key = (os.getpid(), load_settings(None))  # settings read again each time: another MEDOPS_HOME is another key
    with _LOCK:
        if key not in _TRACKERS:
            if not _TRACKERS:
                atexit.register(_close_trackers)
            ws = Workspace.from_settings(key[1])
            _TRACKERS[key] = (Tracker(ws), IdentityService(ws).remembering())
        return _TRACKERS[key]


def _close_trackers() -> None:
    for tracker, credentials in _TRACKERS.values():
        credentials.close()
        tracker.ws.close()
    _TRACKERS.clear()


def load_model(ref: str | tuple[str, int] | Path) -> Predictor:
    """A verified predictor: ``medops.load_model("readmission_30d:2")`` or a bundle file's path.

    The bundle's signature and checksums are checked before the model is loaded, at every call;
    ``predict`` and ``predict_proba`` refuse inputs outside what the model was trained on. The
    workspace is the process's own, opened by its first call (or run) and reused.
    """
    from medops.registry.predictor import load_model as load

    tracker, _ = _process_tracker()  # the process's workspace, opened once: its schema checked once
    return load(tracker.ws, ref)
