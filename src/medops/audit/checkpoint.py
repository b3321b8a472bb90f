"""A signed checkpoint: one committed batch of audit events, anchored outside the database.

A hash chain shows edits, deletions and reordering, but not a cut-off tail or a chain
rebuilt from scratch: the shorter or rebuilt chain is still a valid chain. So every write
transaction that appends events publishes, right after it commits, a checkpoint of its
batch: the workspace (origin), the batch's first event (from), its last (size: the trail's
length then), the head hash after it, and the signer's time, signed with the workspace's
Ed25519 key. The body is plain text, so an auditor can read and check it with any Ed25519
tool.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medops.errors import IntegrityError
from medops.public_keys import key_id

HEADER = "medops audit checkpoint v2"
SUFFIX = ".checkpoint"
# size-from-head: sorts by trail length; unique per batch, since batches never share events.
NAME = re.compile(r"^(\d{12})-(\d{12})-([0-9a-f]{16})\.checkpoint$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    first: int  # the batch's first event ("from")
    size: int  # the batch's last event: the trail's length when it committed
    head: str  # that event's hash
    time: str
    key_id: str
    signature: str

    def body(self) -> str:
        return (
            f"{HEADER}\norigin {self.origin}\nfrom {self.first}\nsize {self.size}\nhead {self.head}\ntime {self.time}\n"
        )

    def render(self) -> str:
        return f"{self.body()}\n— {self.key_id} {self.signature}\n"

    @property
    def name(self) -> str:
        return f"{self.size:012d}-{self.first:012d}-{self.head[:16]}{SUFFIX}"

    def signed_by(self, public: Ed25519PublicKey) -> bool:
        """True when ``public`` (the trusted workspace key, never one read from the database) signed it."""
        if self.key_id != key_id(public):
            return False
        try:
            public.verify(base64.b64decode(self.signature, validate=True), self.body().encode("utf-8"))
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        try:
            body, sig_line = text.split("\n\n", 1)
            lines = body.split("\n")
            if lines[0] != HEADER:
                raise ValueError("header")
            fields = dict(line.split(" ", 1) for line in lines[1:] if line)
            _, kid, signature = sig_line.strip().split(" ")
            first, size, head = int(fields["from"]), int(fields["size"]), fields["head"]
            if not (1 <= first <= size) or not _HEX64.match(head):
                raise ValueError("range or head")
            return cls(fields["origin"], first, size, head, fields["time"], kid, signature)
        except (ValueError, KeyError) as exc:
            raise IntegrityError("an audit checkpoint is malformed") from exc


def sign_checkpoint(origin: str, first: int, size: int, head: str, time: str, private: Ed25519PrivateKey) -> Checkpoint:
    unsigned = Checkpoint(origin, first, size, head, time, key_id(private.public_key()), "")
    signature = base64.b64encode(private.sign(unsigned.body().encode("utf-8"))).decode("ascii")
    return Checkpoint(origin, first, size, head, time, unsigned.key_id, signature)
