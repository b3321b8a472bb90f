"""Authentication: what a password check costs for an unknown user, a wrong password, a disabled and a locked account.

An unknown user name must cost what a wrong password costs, or the time taken tells which
names exist. The cases run interleaved in a rotating order, so a busy moment on a shared
machine lands on every case alike; medians. Real argon2id parameters (the library's
defaults), on SQLite. Ratio = case / wrong password (1.0 = indistinguishable). No peer is compared;
the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from typing import Any

from sqlalchemy import text

from benchmarks.common import PASSWORD, load_average, print_table, timed, workspace

CASES = {
    "wrong password (the reference)": ("victor", "not-his-password"),
    "unknown user": ("nobody", "not-his-password"),
    "disabled user": ("carol", PASSWORD),
    "right password": ("victor", PASSWORD),
    "locked account (no check at all)": ("locked", PASSWORD),
}


def _attempt(ws: Any, username: str, password: str) -> None:
    from medops.errors import AuthenticationFailed

    try:
        ws.users.check_password(username, password, purpose="benchmark")
    except AuthenticationFailed:
        pass


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    from medops.identity.users import MAX_FAILED_LOGINS

    print(f"load average at start: {load_average()}")
    times: dict[str, list[float]] = {name: [] for name in CASES}
    with workspace("sqlite") as ws:
        for name in ("victor", "carol", "locked"):
            ws.users.add("admin", name, name.title(), PASSWORD, [])
        ws.users.disable("admin", "carol", reason="benchmark")
        for _ in range(MAX_FAILED_LOGINS):
            _attempt(ws, "locked", "not-the-password")
        names = list(CASES)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                seconds, _ = timed(partial(_attempt, ws, *CASES[name]))
                times[name].append(seconds)
                with ws.db.write() as session:  # five failures would make victor and carol read as locked
                    session.execute(text("UPDATE users SET failed_logins = 0 WHERE username IN ('victor', 'carol')"))
    reference = statistics.median(times[names[0]])
    rows = [
        [name, f"{statistics.median(t) * 1000:.1f} ms", f"{statistics.median(t) / reference:.2f}"]
        for name, t in times.items()
    ]
    print_table("password checks (median)", ["case", "median", "vs wrong password"], rows)
    print(f"load average at end: {load_average()}")
    return rows


if __name__ == "__main__":
    main()
