"""Who acts: made once per command or request by an adapter and passed down explicitly.

A server has one workspace and many callers, so nothing below the adapters reads the acting
user from the environment or from the workspace; every service operation is given a Caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from medops.errors import InvalidInput

Channel = Literal["cli", "token", "session", "system"]
CHANNELS: tuple[Channel, ...] = ("cli", "token", "session", "system")


def _request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Caller:
    """A user acting through one channel (the CLI, an API token, a dashboard session)."""

    user: str
    channel: Channel = "cli"
    request_id: str = field(default_factory=_request_id)

    def __post_init__(self) -> None:
        if not self.user or not self.user.strip():
            raise InvalidInput("a caller needs a user name", hint="set MEDOPS_USER or the workspace's default_user")
        if self.channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {self.channel!r}; one of {', '.join(CHANNELS)}")
