"""Who may do what: users and roles, API tokens, and Part 11 style e-signatures."""

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
