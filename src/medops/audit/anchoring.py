"""Verifying the trail against the published checkpoints: cut, rolled back, rewritten, unanchored.

One pass over the chain (medops.audit.verify) also notes, per event, what the checkpoints
need: the hash at each checkpoint's size, whether some checkpoint's [from, size] covers
the event, and whether its time went backwards. Then:

- an empty store beside a non-empty trail: the store was emptied or replaced;
- the newest checkpoint beyond the trail's head: the trail was cut back or restored from an
  older copy; a checkpoint whose head differs from the event at its size: rewritten;
- events no checkpoint covers, below the newest checkpoint: written by something that did
  not hold the key; after it: not yet anchored, a problem once older than the grace period;
- an event time more than the tolerance before an earlier event's;
- timestamp tokens that do not verify; intervals without one are a warning.

Only checkpoints signed by the trusted public key count; that key is a parameter, never
read from the database, where anyone who can write could put their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from medops import clock
from medops.audit.checkpoint import Checkpoint
from medops.audit.checkpoint_store import (
    CheckpointStore,
    checkpoint_names,
    read_checkpoint,
    read_token,
    token_names,
)
from medops.audit.verify import DELETED, ChainProblem, Row, VerifyResult, verify_chain
from medops.errors import IntegrityError, MedopsError
from medops.store.database import Database

if TYPE_CHECKING:
    from medops.audit.timestamps import TimestampAuthority  # imported only when configured

FORGED, REWRITTEN, UNANCHORED, BACKWARDS = "forged", "rewritten", "unanchored", "backwards"
_MAX_NAMED = 20  # events or files named in one problem; the count says how many more


@dataclass(frozen=True)
class TrailCheck:
    """The chain's verdict and the checkpoints': every problem found, first the chain's."""

    chain: VerifyResult
    problems: list[ChainProblem]
    warnings: list[str] = field(default_factory=list)
    checkpoints: int = 0
    anchored_at: int | None = None  # the newest checkpoint's size
    pending: tuple[int, int] | None = None  # events written within the grace period, not yet anchored
    timestamps: int = 0  # verified timestamp tokens

    @property
    def problem(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Run:
    """Consecutive events no checkpoint covers."""

    first: int
    last: int
    first_ts: str


class _Walker:
    """Sees each linked event once, in order, and keeps only what the checks need."""

    def __init__(self, covered: list[tuple[int, int]], sizes: set[int], tolerance: float) -> None:
        self.covered = covered
        self.sizes = sizes
        self.tolerance = tolerance
        self.hashes: dict[int, str] = {}
        self.runs: list[_Run] = []
        self.backwards: list[tuple[int, int, float]] = []
        self.backwards_count = 0
        self._at = 0
        self._max_ts = ""
        self._max_seq = 0

    def observe(self, row: Row) -> None:
        seq, ts, digest = row[0], row[1], row[10]
        if seq in self.sizes:
            self.hashes[seq] = digest
        while self._at < len(self.covered) and self.covered[self._at][1] < seq:
            self._at += 1
        if not (self._at < len(self.covered) and self.covered[self._at][0] <= seq):
            if self.runs and self.runs[-1].last == seq - 1:
                self.runs[-1].last = seq
            else:
                self.runs.append(_Run(seq, seq, ts))
        if ts >= self._max_ts:  # fixed-width ISO strings sort as times do: parse only when out of order
            self._max_ts, self._max_seq = ts, seq
            return
        behind = (clock.parse_iso(self._max_ts) - clock.parse_iso(ts)).total_seconds()
        if behind > self.tolerance:
            self.backwards_count += 1
            if len(self.backwards) < _MAX_NAMED:
                self.backwards.append((seq, self._max_seq, behind))


def verify_trail(
    db: Database,
    store: CheckpointStore,
    origin: str,
    public: Ed25519PublicKey,
    *,
    grace: float = 10.0,
    tolerance: float = 5.0,
    authority: TimestampAuthority | None = None,
    timestamp_interval: float = 300.0,
) -> TrailCheck:
    """Verify the chain and hold it against every checkpoint ``public`` signed."""
    problems: list[ChainProblem] = []
    checkpoints = _load(store, origin, public, problems)
    covered = _merge([(cp.first, cp.size) for cp in checkpoints])
    walker = _Walker(covered, {cp.size for cp in checkpoints}, tolerance)
    chain = verify_chain(db, walker.observe)
    if chain.problem is not None:
        problems.insert(0, chain.problem)
    newest = max(checkpoints, key=lambda cp: cp.size) if checkpoints else None
    problems += _against_checkpoints(chain, checkpoints, newest, walker, store)
    unanchored, pending = _unanchored(walker.runs, newest, grace)
    problems += unanchored
    problems += _backwards(walker, tolerance)
    warnings: list[str] = []
    stamped = _timestamps(store, checkpoints, authority, timestamp_interval, problems, warnings)
    if pending is not None:
        warnings.append(f"events {pending[0]} to {pending[1]} are not anchored yet (written less than {grace:g} s ago)")
    return TrailCheck(chain, problems, warnings, len(checkpoints), newest.size if newest else None, pending, stamped)


def _load(
    store: CheckpointStore, origin: str, public: Ed25519PublicKey, problems: list[ChainProblem]
) -> list[Checkpoint]:
    """The checkpoints the trusted key signed for this workspace; any other file there is a problem."""
    names = checkpoint_names(store)

    def one(name: str) -> Checkpoint | str:
        try:
            checkpoint = read_checkpoint(store, name)
        except MedopsError as exc:
            return f"{name}: {exc.message}"
        if checkpoint.origin != origin:
            return f"{name} belongs to workspace {checkpoint.origin}"
        if not checkpoint.signed_by(public):
            return f"{name} is not signed by the workspace key"
        return checkpoint

    if store.local:
        loaded = [one(name) for name in names]
    else:
        with ThreadPoolExecutor(max_workers=16) as pool:  # an object store answers each read in a round trip
            loaded = list(pool.map(one, names))
    bad = [item for item in loaded if isinstance(item, str)]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        problems.append(
            ChainProblem(
                0,
                FORGED,
                f"the checkpoint store holds files that are not valid checkpoints: {'; '.join(bad[:5])}{more}",
            )
        )
    return [item for item in loaded if isinstance(item, Checkpoint)]


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def _against_checkpoints(
    chain: VerifyResult,
    checkpoints: Sequence[Checkpoint],
    newest: Checkpoint | None,
    walker: _Walker,
    store: CheckpointStore,
) -> list[ChainProblem]:
    if newest is None:
        if chain.head_seq == 0:
            return []
        return [
            ChainProblem(
                1,
                UNANCHORED,
                f"the checkpoint store ({store.url}) holds no checkpoint, but the trail holds {chain.head_seq} "
                "events: the store was emptied or replaced, or checkpoint_store names the wrong one",
            )
        ]
    out = []
    if chain.ok and newest.size > chain.head_seq:
        first = chain.head_seq + 1
        out.append(
            ChainProblem(
                first,
                DELETED,
                f"events {first} to {newest.size} missing: the trail ends at event {chain.head_seq}, but a checkpoint "
                f"of {newest.time} covers up to {newest.size}: it was cut back or restored from an older copy",
            )
        )
    differ = sorted(
        (cp for cp in checkpoints if cp.size in walker.hashes and walker.hashes[cp.size] != cp.head),
        key=lambda cp: cp.size,
    )
    if differ:
        cp = differ[0]
        more = f" ({len(differ)} checkpoints differ)" if len(differ) > 1 else ""
        out.append(
            ChainProblem(
                cp.size,
                REWRITTEN,
                f"event {cp.size} differs from the checkpoint of {cp.time}: the trail was rewritten or replaced "
                f"from that event on{more}",
            )
        )
    return out


def _unanchored(
    runs: list[_Run], newest: Checkpoint | None, grace: float
) -> tuple[list[ChainProblem], tuple[int, int] | None]:
    """Uncovered events: a problem once older than the grace period, else pending."""
    if newest is None:
        return [], None  # the empty store is the problem already named
    now = clock.utc_now()
    inside: list[_Run] = []
    tail: _Run | None = None
    pending = None
    for run in runs:
        if (now - clock.parse_iso(run.first_ts)).total_seconds() <= grace:
            pending = (run.first, run.last) if pending is None else (pending[0], run.last)
        elif run.last <= newest.size:
            inside.append(run)
        else:
            tail = run
    out = []
    if inside:
        named = ", ".join(str(r.first) if r.first == r.last else f"{r.first} to {r.last}" for r in inside[:_MAX_NAMED])
        count = sum(r.last - r.first + 1 for r in inside)
        out.append(
            ChainProblem(
                inside[0].first,
                UNANCHORED,
                f"events {named} ({count} in all) are covered by no checkpoint although later ones are: they were "
                "written by something that did not hold the workspace key, or their checkpoint was never published",
            )
        )
    if tail is not None:
        out.append(
            ChainProblem(
                tail.first,
                UNANCHORED,
                f"events {tail.first} to {tail.last} were never anchored: no checkpoint covers them, more than "
                f"{grace:g} s after they were written",
            )
        )
    return out, pending


def _backwards(walker: _Walker, tolerance: float) -> list[ChainProblem]:
    if not walker.backwards:
        return []
    seq, before, behind = walker.backwards[0]
    more = f" ({walker.backwards_count} events in all)" if walker.backwards_count > 1 else ""
    return [
        ChainProblem(
            seq,
            BACKWARDS,
            f"event {seq}'s time is {behind:.1f} s before event {before}'s, beyond the {tolerance:g} s tolerance{more}",
        )
    ]


def _timestamps(
    store: CheckpointStore,
    checkpoints: Sequence[Checkpoint],
    authority: TimestampAuthority | None,
    interval: float,
    problems: list[ChainProblem],
    warnings: list[str],
) -> int:
    """Check every stored token; warn about intervals whose checkpoints have none."""
    stamped = token_names(store)
    by_name = {cp.name: cp for cp in checkpoints}
    if authority is None:
        if stamped:
            warnings.append(f"{len(stamped)} timestamp tokens not checked: timestamp_authority_cert is not set")
        return 0
    good = 0
    for name in sorted(stamped):
        cp = by_name.get(name)
        token = read_token(store, name)
        if cp is None or token is None:
            continue
        try:
            authority.check(token, cp.body().encode("utf-8"))
            good += 1
        except IntegrityError as exc:
            problems.append(ChainProblem(cp.size, FORGED, f"the timestamp token of checkpoint {name}: {exc.message}"))

    def bucket(cp: Checkpoint) -> int:
        return int(clock.parse_iso(cp.time).timestamp() // interval)

    have = {bucket(by_name[n]) for n in stamped if n in by_name}
    since = min(have) if have else None
    missing = sorted({bucket(cp) for cp in checkpoints if since is not None and bucket(cp) > since} - have)
    if checkpoints and since is None:
        warnings.append("no checkpoint has a timestamp token: the timestamp authority never answered")
    elif missing:
        warnings.append(
            f"{len(missing)} interval(s) of {interval:g} s with checkpoints but no timestamp token "
            "(the timestamp authority did not answer then)"
        )
    return good
