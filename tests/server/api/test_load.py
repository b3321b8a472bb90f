"""`medops server` under a minute of load at concurrency 32 (loopback, bounded in time): reads and
audited changes from several users at once, on SQLite and PostgreSQL. Not one error, and the
audit chain verifies afterwards with every change in it."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from medops.client import IDLE_SECONDS
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import PASSWORD, start_serve

pytestmark = pytest.mark.slow

SECONDS = 60.0
CONCURRENCY = 32
USERS = ("admin", "alice", "ming", "victor")


def tokens(ws: Workspace) -> dict[str, str]:
    identity = Services(ws).identity
    made = {}
    for user in USERS:
        caller = identity.authenticate(identity.login(user, password=PASSWORD)[1])
        made[user] = identity.create_token(caller, "load")[1]
    return made


async def client_loop(http: httpx.AsyncClient, secrets: dict[str, str], until: float, seen: Counter[str]) -> None:
    rng = random.Random()
    while time.monotonic() < until:
        user = rng.choice(USERS)
        headers = {"Authorization": f"Bearer {secrets[user]}"}
        pick = rng.random()
        if pick < 0.15:  # a change and its undoing, both audited
            made = await http.post("/v1/tokens", headers=headers, json={"name": f"load-{rng.random():.6f}"})
            seen[f"POST /v1/tokens {made.status_code}"] += 1
            if made.status_code == 201:
                gone = await http.delete(f"/v1/tokens/{made.json()['id']}?reason=load", headers=headers)
                seen[f"DELETE /v1/tokens {gone.status_code}"] += 1
            continue
        path = rng.choice(["/v1/runs?limit=20", "/v1/models", "/v1/audit/events?limit=10", "/v1/auth/whoami"])
        answer = await http.get(path, headers=headers)
        seen[f"GET {path.split('?')[0]} {answer.status_code}"] += 1


@pytest.mark.parametrize("seconds", [SECONDS])
def test_a_minute_of_load_gives_no_error_and_keeps_the_chain(
    registry: tuple[Workspace, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    ws, _ = registry
    secrets = tokens(ws)
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    server, url = start_serve([], command_name="server", log=tmp_path / "server.log")
    seen: Counter[str] = Counter()
    try:

        async def load() -> None:
            # as medops.Client does: an idle connection is not reused as the server's keep-alive closes it
            limits = httpx.Limits(max_connections=CONCURRENCY, keepalive_expiry=IDLE_SECONDS)
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
                until = time.monotonic() + seconds
                await asyncio.gather(*(client_loop(http, secrets, until, seen) for _ in range(CONCURRENCY)))

        asyncio.run(load())
        with httpx.Client(base_url=url, timeout=120) as http:
            verified = http.get("/v1/audit/verify", headers={"Authorization": f"Bearer {secrets['admin']}"}).json()
    finally:
        server.terminate()
        server.wait(30)
    failed = {k: n for k, n in seen.items() if not k.endswith((" 200", " 201"))}
    assert failed == {}, (failed, (tmp_path / "server.log").read_text()[-3000:])
    changes = seen["DELETE /v1/tokens 200"]
    assert sum(seen.values()) > 1000 and changes > 50
    assert verified["ok"] is True, verified
    log = (tmp_path / "server.log").read_text().splitlines()
    assert sum('"status": 200' in line or '"status": 201' in line for line in log) >= sum(seen.values())
