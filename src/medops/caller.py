"""Who acts: made once per command or request by an adapter and passed down explicitly.

A server has one workspace and many callers, so nothing below the adapters reads the acting
user from the environment or from the workspace; every service operation is given a Caller.
An adapter makes a Caller only from a credential medops verified (a login session or an API
token, see medops.services.identity), or the anonymous caller for a read that needs no login.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from medops.errors import InvalidInput

Channel = Literal["cli", "token", "session", "system", "anonymous"]
CHANNELS: tuple[Channel, ...] = ("cli", "token", "session", "system", "anonymous")
# The name a caller without a credential reads under; no user can hold it (see identity.users).
ANONYMOUS = "anonymous"


def _request_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, as a UUID4's hex, at a quarter of its cost


@dataclass(frozen=True)
class Caller:
    """A user acting through one channel (a login session, an API token, the system itself)."""

    user: str
    channel: Channel = "cli"
    request_id: str = field(default_factory=_request_id)

    def __post_init__(self) -> None:
        if not self.user or not self.user.strip():
            raise InvalidInput("a caller needs a user name")
        if self.channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {self.channel!r}; one of {', '.join(CHANNELS)}")
        if (self.user == ANONYMOUS) != (self.channel == "anonymous"):
            raise InvalidInput(f"the name {ANONYMOUS!r} is the anonymous channel's alone")

    @classmethod
    def anonymous(cls) -> Caller:
        """Who reads without a login, where the workspace allows it: no role, no change."""
        return cls(ANONYMOUS, channel="anonymous")

    def anew(self) -> Caller:
        """The same user and channel for another request (its own request id)."""
        return Caller(self.user, self.channel, _request_id())

    @property
    def authenticated(self) -> bool:
        return self.channel != "anonymous"
