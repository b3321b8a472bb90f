"""The roles a user can hold; a user may hold several."""

from __future__ import annotations

from enum import StrEnum

from medops.errors import InvalidInput


class Role(StrEnum):
    DATA_SCIENTIST = "data_scientist"
    ML_ENGINEER = "ml_engineer"
    VALIDATOR = "validator"
    CLINICAL_REVIEWER = "clinical_reviewer"
    AUDITOR = "auditor"
    ADMIN = "admin"
    PREDICTOR = "predictor"  # calls the prediction API of served models, nothing else


# who may read the workspace's records: every role but a prediction token's
READ_ROLES = frozenset(Role) - {Role.PREDICTOR}


def parse_role(name: str) -> Role:
    try:
        return Role(name.strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {name!r}", hint=f"roles are: {known}") from None


def parse_roles(names: str | list[str] | None) -> list[Role]:
    """Accept `a,b` or a list; duplicates collapse, order is kept."""
    if not names:
        return []
    parts = names.split(",") if isinstance(names, str) else [p for n in names for p in n.split(",")]
    out: list[Role] = []
    for part in parts:
        if part.strip():
            role = parse_role(part)
            if role not in out:
                out.append(role)
    return out
