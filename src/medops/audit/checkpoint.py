"""Signed checkpoints of the chain head, kept outside the metadata database.

A hash chain shows edits, deletions and reordering, but not a cut-off tail: the shorter
chain is still a valid chain. A checkpoint records (workspace, size, head hash), signed
with the workspace's Ed25519 key, and is written to the artifact store, out of reach of
someone who can only change the database. Verification compares the chain against the
latest checkpoint: fewer events, or another hash at the checkpoint's size, is tampering.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from medops.audit.verify import DELETED, ChainProblem, VerifyResult, verify_chain
from medops.clock import to_iso, utc_now
from medops.errors import IntegrityError
from medops.public_keys import decode_public, key_id
from medops.store.artifacts import ArtifactStore
from medops.store.database import Database
from medops.store.schema import AuditEvent, SigningKey

NAMESPACE = "audit-checkpoints"
HEADER = "medops audit checkpoint v1"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    head: str
    time: str
    key_id: str
    signature: str

    def body(self) -> str:
        return f"{HEADER}\norigin {self.origin}\nsize {self.size}\nhead {self.head}\ntime {self.time}\n"

    def render(self) -> str:
        return f"{self.body()}\n— {self.key_id} {self.signature}\n"

    @property
    def name(self) -> str:
        return f"{self.size:012d}-{self.head[:16]}.checkpoint"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        try:
            body, sig_line = text.split("\n\n", 1)
            lines = body.split("\n")
            if lines[0] != HEADER:
                raise ValueError("header")
            fields = dict(line.split(" ", 1) for line in lines[1:] if line)
            _, kid, signature = sig_line.strip().split(" ")
            return cls(fields["origin"], int(fields["size"]), fields["head"], fields["time"], kid, signature)
        except (ValueError, KeyError) as exc:
            raise IntegrityError("an audit checkpoint is malformed") from exc


def make_checkpoint(origin: str, size: int, head: str, private: Ed25519PrivateKey) -> Checkpoint:
    unsigned = Checkpoint(origin, size, head, to_iso(utc_now()), key_id(private.public_key()), "")
    signature = base64.b64encode(private.sign(unsigned.body().encode("utf-8"))).decode("ascii")
    return Checkpoint(unsigned.origin, size, head, unsigned.time, unsigned.key_id, signature)


def latest(artifacts: ArtifactStore) -> Checkpoint | None:
    names = artifacts.list_named(NAMESPACE)
    if not names:
        return None
    return Checkpoint.parse(artifacts.read_named(NAMESPACE, names[-1]).decode("utf-8"))


def save(artifacts: ArtifactStore, checkpoint: Checkpoint) -> None:
    if checkpoint.name not in artifacts.list_named(NAMESPACE):
        artifacts.put_named(NAMESPACE, checkpoint.name, checkpoint.render().encode("utf-8"))


def check(db: Database, checkpoint: Checkpoint, origin: str, result: VerifyResult) -> ChainProblem | None:
    """Does the (already verified) chain still contain the checkpointed head?"""
    if checkpoint.origin != origin:
        return ChainProblem(0, "foreign", f"the latest checkpoint belongs to workspace {checkpoint.origin}")
    with db.read() as session:
        public = session.get(SigningKey, checkpoint.key_id)
        stored = session.execute(select(AuditEvent.hash).where(AuditEvent.seq == checkpoint.size)).scalar()
    try:
        if public is None:
            raise InvalidSignature
        decode_public(public.public_key).verify(base64.b64decode(checkpoint.signature), checkpoint.body().encode())
    except (InvalidSignature, ValueError):
        return ChainProblem(checkpoint.size, "forged", "the latest checkpoint's signature does not verify")
    if result.head_seq < checkpoint.size or stored is None:
        first = result.head_seq + 1
        return ChainProblem(
            first,
            DELETED,
            f"events {first} to {checkpoint.size} missing: the trail was cut back below the checkpoint "
            f"of {checkpoint.time}",
        )
    if stored != checkpoint.head:
        return ChainProblem(
            checkpoint.size,
            "rewritten",
            f"event {checkpoint.size} differs from the checkpoint of {checkpoint.time}: the trail was rewritten",
        )
    return None


@dataclass(frozen=True)
class TrailCheck:
    """The chain's own verdict, then the checkpoint's; ``problem`` is the first of either."""

    chain: VerifyResult
    problem: ChainProblem | None
    anchored_at: int | None
    written: Checkpoint | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_trail(
    db: Database, artifacts: ArtifactStore, origin: str, private: Ed25519PrivateKey | None, *, write: bool = True
) -> TrailCheck:
    """Verify the chain, compare it with the latest checkpoint, then checkpoint the new head."""
    result = verify_chain(db)
    if not result.ok:
        return TrailCheck(result, result.problem, None, None)
    previous = latest(artifacts)
    if previous is not None:
        problem = check(db, previous, origin, result)
        if problem is not None:
            return TrailCheck(result, problem, None, None)
    written = None
    if write and private is not None and result.head_seq and (previous is None or previous.size < result.head_seq):
        written = make_checkpoint(origin, result.head_seq, result.head_hash, private)
        save(artifacts, written)
    return TrailCheck(result, None, previous.size if previous else None, written)
