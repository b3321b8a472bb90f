"""The API's JSON: the services' ``to_json()`` forms, encoded as the CLI's ``--json`` encodes them, so a
client prints the same bytes whether it asked the server or the database."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


def encode(value: Any) -> bytes:
    return json.dumps(value, default=str, ensure_ascii=False).encode()


class Doc(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)
