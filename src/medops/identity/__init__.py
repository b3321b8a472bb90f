"""Who may do what: users and roles, API tokens, and Part 11 style e-signatures.

Members load on first use: a key helper or the roles can be imported without the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medops.lazy import members

if TYPE_CHECKING:
    from medops.identity.roles import Role, parse_role, parse_roles
    from medops.identity.signatures import SignatureCheck, SignatureService, SignatureView, record_hash
    from medops.identity.tokens import TokenService, TokenView
    from medops.identity.users import UserService, UserView

__all__ = [
    "Role",
    "SignatureCheck",
    "SignatureService",
    "SignatureView",
    "TokenService",
    "TokenView",
    "UserService",
    "UserView",
    "parse_role",
    "parse_roles",
    "record_hash",
]
_HOMES = {
    "Role": "roles",
    "parse_role": "roles",
    "parse_roles": "roles",
    "SignatureCheck": "signatures",
    "SignatureService": "signatures",
    "SignatureView": "signatures",
    "record_hash": "signatures",
    "TokenService": "tokens",
    "TokenView": "tokens",
    "UserService": "users",
    "UserView": "users",
}

__getattr__ = members(__name__, _HOMES)
