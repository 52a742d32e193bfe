"""Who may use the dashboard and the REST API: local users and API tokens.

Passwords are kept only as argon2id hashes (argon2-cffi's defaults, rehashed when those
change); API tokens are 256-bit random strings shown once at creation and kept as their
SHA-256 (a token is not guessable, so a slow hash would buy nothing but slower API calls).
Each creation and each change of role is an audit row (invariant 8), naming no secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select, update

from ml_connector.core.models import require_aware
from ml_connector.errors import ConfigError
from ml_connector.store.auditrows import audit_row
from ml_connector.store.engine import reading, writing
from ml_connector.store.tables import api_tokens, audit, users

__all__ = ["TOKEN_PREFIX", "Principal", "Role", "UserStore", "engine_of"]

#: API tokens start with this, so secret scanners and people can tell what they are.
TOKEN_PREFIX = "mlc_"  # noqa: S105 - a prefix, not a secret
_HASHER = PasswordHasher()
#: Compared against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


class Role(StrEnum):
    """viewer reads everything; operator also replays notifications and pauses flows."""

    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user (local or SSO) or an API token, with its role."""

    name: str
    role: Role
    via: str  # "password", "sso" or "token"

    @property
    def can_operate(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def actor(self) -> str:
        """How the audit names this principal."""
        return f"token:{self.name}" if self.via == "token" else f"user:{self.name}"


def engine_of(store: object) -> Engine:
    """The engine of a SqlStore (the store package's own business, shared among its modules)."""
    engine = getattr(store, "_engine", None)
    if not isinstance(engine, Engine):
        raise TypeError(f"{type(store).__name__} has no SQL engine")
    return engine


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str, what: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > 200 or any(ch.isspace() or not ch.isprintable() for ch in clean):
        raise ConfigError(f"{what} name {name!r}: 1-200 printable characters without spaces")
    return clean


class UserStore:
    """Users and API tokens in the connector's database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- users -------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role, password: str | None, now: datetime, *, actor: str) -> None:
        """Create a user, or set an existing one's role and password (None: SSO only)."""
        require_aware(now, "add_user(now)")
        name = _check_name(name, "user")
        if password is not None and len(password) < 8:
            raise ConfigError("the password must have at least 8 characters")
        hashed = _HASHER.hash(password) if password is not None else None
        with writing(self._engine) as conn:
            found = conn.execute(select(users.c.id).where(users.c.name == name)).scalar_one_or_none()
            if found is None:
                conn.execute(users.insert().values(name=name, role=role.value, password_hash=hashed,
                                                   created_at=now, updated_at=now))
            else:
                conn.execute(update(users).where(users.c.id == found).values(
                    role=role.value, password_hash=hashed, updated_at=now))
            conn.execute(audit.insert().values(audit_row(
                now, "user_added" if found is None else "user_changed", nid=None, flow=None, status=None,
                user=name, role=role.value, actor=actor, password=password is not None,
            )))

    def role_of(self, name: str) -> Role | None:
        with reading(self._engine) as conn:
            role = conn.execute(select(users.c.role).where(users.c.name == name)).scalar_one_or_none()
        return Role(role) if role else None

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The user when `password` is theirs; None otherwise (the same time either way)."""
        with reading(self._engine) as conn:
            row = conn.execute(
                select(users.c.id, users.c.role, users.c.password_hash).where(users.c.name == name.strip())
            ).first()
        stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row.password_hash:
            return None
        if _HASHER.check_needs_rehash(stored):
            with writing(self._engine) as conn:
                conn.execute(update(users).where(users.c.id == row.id).values(password_hash=_HASHER.hash(password)))
        return Principal(name=name.strip(), role=Role(row.role), via="password")

    # -- API tokens --------------------------------------------------------------------------

    def add_token(self, name: str, role: Role, now: datetime, *, actor: str) -> str:
        """Create a token and return it: the only time it is ever shown."""
        require_aware(now, "add_token(now)")
        name = _check_name(name, "token")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with writing(self._engine) as conn:
            if conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first() is not None:
                raise ConfigError(f"a token named {name!r} exists already; choose another name")
            conn.execute(api_tokens.insert().values(name=name, role=role.value, token_hash=_token_hash(token),
                                                    created_at=now))
            conn.execute(audit.insert().values(audit_row(
                now, "token_added", nid=None, flow=None, status=None, token=name, role=role.value, actor=actor,
            )))
        return token

    def token_principal(self, token: str) -> Principal | None:
        """The token's name and role, if it is one of ours."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = _token_hash(token)
        with reading(self._engine) as conn:
            row = conn.execute(
                select(api_tokens.c.name, api_tokens.c.role, api_tokens.c.token_hash)
                .where(api_tokens.c.token_hash == digest)
            ).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        return Principal(name=row.name, role=Role(row.role), via="token")
