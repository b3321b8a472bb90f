"""Safe rollout beside a served model: a shadow (scored and logged, never returned) and a canary
(a share of the traffic answered by another version, sticky by entity).

Declared per served model when the server starts: ``--shadow [NAME=]SPEC``, ``--canary [NAME=]SPEC``
and ``--canary-percent [NAME=]PERCENT``. Without ``NAME=``, the spec's own model name is the
served model it goes beside. Each variant is a slot like the champion's, so an alias it names is
followed too.

Stickiness: a row that names its entity (see medops.serving.lookup) goes to the canary when a
hash of the served name and the entity id falls in the share, so a patient keeps getting
answers from the same variant, across requests, workers and restarts, while the share is
unchanged. The id enters only the hash (never a log or an answer). A row that carries its
features and names no entity has no identity to stick to: it is routed at random in the share.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from medops.errors import InvalidInput
from medops.serving.follow import ModelSlot
from medops.serving.models import ServedModel, parse_spec

BUCKETS = 1 << 64


@dataclass(frozen=True)
class VariantSpec:
    """A declared variant: the served name it goes beside and the spec of the model that answers."""

    served: str
    spec: str

    def to_json(self) -> dict[str, str]:
        return {"served": self.served, "spec": self.spec}


@dataclass(frozen=True)
class RolloutPlan:
    """Every variant declared at start, by served name: checked before any bundle is read."""

    shadows: dict[str, VariantSpec]
    canaries: dict[str, VariantSpec]
    percents: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "shadow": [f"{v.served}={v.spec}" for v in self.shadows.values()],
            "canary": [f"{v.served}={v.spec}" for v in self.canaries.values()],
            "canary_percent": [f"{k}={p:g}" for k, p in self.percents.items()],
        }


def _variant(text: str, served: list[str], option: str) -> VariantSpec:
    name, sep, spec = text.partition("=")
    if not sep:
        name, spec = parse_spec(text).name, text
    name, spec = name.strip(), spec.strip()
    parse_spec(spec)  # a bad spec is refused here (a bundle file is not a variant: variants follow the registry)
    if name not in served:
        raise InvalidInput(
            f"{option} {text!r}: {name!r} is not a model this server serves",
            code="variant_without_model",
            hint="serve the model too, or name it: SERVED=NAME@ALIAS",
        )
    return VariantSpec(name, spec)


def _one_each(texts: list[str], served: list[str], option: str) -> dict[str, VariantSpec]:
    """The variants of one kind by served name: at most one per served model."""
    declared: dict[str, VariantSpec] = {}
    for text in texts:
        v = _variant(text, served, option)
        if v.served in declared:
            raise InvalidInput(
                f"{v.served!r} has more than one {option}", code="variant_twice", hint="declare one per model"
            )
        declared[v.served] = v
    return declared


def plan(served: list[str], shadows: list[str], canaries: list[str], percents: list[str]) -> RolloutPlan:
    """The declarations parsed and checked: one shadow and one canary at most per served model."""
    shadow = _one_each(shadows, served, "shadow")
    canary = _one_each(canaries, served, "canary")
    share: dict[str, float] = {}
    for text in percents:
        name, sep, number = text.rpartition("=")
        if not sep:
            if len(canary) != 1:
                raise InvalidInput(
                    f"canary percent {text!r}: say which model's",
                    code="variant_without_model",
                    hint="NAME=PERCENT, for example readmission=10",
                )
            name = next(iter(canary))
        try:
            value = float(number.strip().removesuffix("%"))
        except ValueError:
            value = -1.0
        if not 0 < value < 100:
            raise InvalidInput(
                f"canary percent {text!r} is not a share between 0 and 100",
                code="invalid_canary_share",
                hint="for example readmission=10 (10% of rows)",
            )
        if name not in canary:
            raise InvalidInput(
                f"canary percent for {name!r}, which has no canary",
                code="variant_without_model",
                hint="declare the canary too",
            )
        share[name] = value
    missing = sorted(set(canary) - set(share))
    if missing:
        raise InvalidInput(
            f"no canary percent for {', '.join(missing)}: how much traffic goes to it must be said",
            code="invalid_canary_share",
            hint="for example readmission=10",
        )
    return RolloutPlan(shadow, canary, share)


@dataclass
class Rollout:
    """What one served name answers with: its champion, and the variants declared beside it."""

    champion: ModelSlot
    canary: ModelSlot | None = None
    canary_percent: float = 0.0
    shadow: ModelSlot | None = None
    _routing: Routing | None = field(default=None, init=False, repr=False, compare=False)

    def slots(self, name: str) -> dict[str, ModelSlot]:
        """Every slot to follow, keyed for the server's log: NAME, NAME/canary, NAME/shadow."""
        out = {name: self.champion}
        if self.canary is not None:
            out[f"{name}/canary"] = self.canary
        if self.shadow is not None:
            out[f"{name}/shadow"] = self.shadow
        return out

    def now(self) -> Routing:
        """The models as they are at this moment: what one request keeps to its end. Made anew only after a swap
        (every request asks)."""
        champion = self.champion.current
        canary = self.canary.current if self.canary is not None else None
        shadow = self.shadow.current if self.shadow is not None else None
        made = self._routing
        if (
            made is None
            or made.champion is not champion
            or made.canary is not canary
            or made.shadow is not shadow
            or made.canary_percent != self.canary_percent
        ):
            made = self._routing = Routing(champion, canary, self.canary_percent, shadow)
        return made


@dataclass(frozen=True)
class Routing:
    champion: ServedModel
    canary: ServedModel | None = None
    canary_percent: float = 0.0
    shadow: ServedModel | None = None

    @cached_property
    def entity_keys(self) -> frozenset[str]:
        """The entity keys the models here look up (read once per routing, not per request)."""
        keys: set[str] = set()
        for m in (self.champion, self.canary, self.shadow):
            if m is not None and m.lookup is not None:
                keys |= m.lookup.keys.keys()
        return frozenset(keys)

    def looks_up(self, records: list[Any]) -> bool:
        """Whether a row names an entity whose features a model here reads from the online store: I/O to wait on."""
        keys = self.entity_keys
        return bool(keys) and any(isinstance(r, dict) and not keys.isdisjoint(r) for r in records)

    def describe(self) -> dict[str, Any]:
        """What GET /v1/models/{name} and /readyz say of the variants beside the champion."""
        out: dict[str, Any] = {}
        if self.canary is not None:
            out["canary"] = {**self.canary.summary(), "percent": self.canary_percent}
        if self.shadow is not None:
            out["shadow"] = self.shadow.summary()
        return out


def to_canary(routing: Routing, records: list[Any], rng: random.Random | None = None) -> list[bool]:
    """Which rows the canary answers: by a hash of the entity id when a row names one, else at random."""
    if routing.canary is None:
        return [False] * len(records)
    keys = sorted(routing.champion.lookup.keys) if routing.champion.lookup is not None else []
    cut = routing.canary_percent / 100 * BUCKETS
    draw = rng or random
    chosen = []
    for record in records:
        named = [f"{k}={record[k]}" for k in keys if isinstance(record, dict) and record.get(k) is not None]
        if named:
            digest = hashlib.sha256("\0".join([routing.champion.name, *named]).encode()).digest()
            chosen.append(int.from_bytes(digest[:8], "big") < cut)
        else:
            chosen.append(draw.random() * BUCKETS < cut)
    return chosen
