"""Who is calling, and what they may do: bearer tokens mapped to roles.

Roles (README "Roles"):

- ``service``: posts transactions;
- ``analyst``: reads, labels alerts, drafts, backtests and shadows rules;
- ``admin``: everything (activates and retires rules, sets lists); AEGIS_API_TOKEN is an
  admin token, so a deployment with one token keeps working as before;
- ``read``: reads (GET).

Every endpoint names the permission it needs (`Authenticator.require`): no token or an
unknown one is 401, a known token whose role lacks the permission 403. The principal's
``actor`` ("role:name") is what the audit log and rule versions record.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

# Permissions: what an endpoint needs.
READ, SCORE, LABEL, DRAFT_RULES, ACTIVATE_RULES, SET_LISTS = (
    "read",
    "score",
    "label",
    "draft rules",
    "activate rules",
    "set lists",
)
ROLES: dict[str, frozenset[str]] = {
    "service": frozenset({SCORE}),
    "analyst": frozenset({READ, LABEL, DRAFT_RULES}),
    "admin": frozenset({READ, SCORE, LABEL, DRAFT_RULES, ACTIVATE_RULES, SET_LISTS}),
    "read": frozenset({READ}),
}

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <token of a role>")


class TokenError(ValueError):
    """A token list that cannot be read (AEGIS_API_TOKENS)."""


@dataclass(frozen=True)
class Principal:
    role: str
    name: str

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"


ANONYMOUS = Principal("anonymous", "open-reads")


def parse_tokens(text: str | None) -> list[tuple[str, Principal]]:
    """ "role:name:token,role:name:token" -> [(token, Principal)]; TokenError naming the
    entry that is not of that form (never the token itself)."""
    out = []
    for i, entry in enumerate(part.strip() for part in (text or "").split(",")):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise TokenError(f"AEGIS_API_TOKENS entry {i + 1}: expected role:name:token")
        role, name, token = parts
        if role not in ROLES:
            raise TokenError(
                f"AEGIS_API_TOKENS entry {i + 1}: role {role!r} is not one of {', '.join(ROLES)}"
            )
        out.append((token, Principal(role, name)))
    return out


class Authenticator:
    """The API's tokens and the FastAPI dependencies that check them."""

    def __init__(self, tokens: Iterable[tuple[str, Principal]], open_reads: bool = False) -> None:
        self.tokens = [(token.encode(), who) for token, who in tokens if token]
        self.open_reads = open_reads

    def identify(self, given: str) -> Principal | None:
        found = None
        for token, who in self.tokens:  # every token compared: the time tells nothing
            if hmac.compare_digest(given.encode(), token) and found is None:
                found = who
        return found

    def require(self, permission: str) -> Callable[..., Awaitable[Principal]]:
        """A dependency giving the caller's Principal, or 401 / 403."""

        # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on
        # every request for a check that takes microseconds.
        async def check(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> Principal:
            if credentials is None and permission == READ and self.open_reads:
                return ANONYMOUS
            who = self.identify(credentials.credentials if credentials is not None else "")
            if who is None:
                raise HTTPException(
                    401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
                )
            if permission not in ROLES[who.role]:
                raise HTTPException(403, f"the {who.role} role may not {permission}")
            return who

        return check
