"""Bearer API tokens of the HTTP APIs: who may read and who may write.

Tokens are made by `dvc tokens create` (the only writer of `api_tokens`); a service keeps nothing but
reads the token's SHA-256 on each request, so a revocation takes effect at the next request. Roles:
`viewer` reads, `operator` reads and writes (and reads personal data: recipients, addresses).
Missing or unknown token: 401; a viewer token on an operator route: 403.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_PREFIX = "dvc_"
SHOWN_PREFIX_LENGTH = 10  # `dvc_` and six random characters, kept to recognise a token in lists


class Role(StrEnum):
    """A token's role; an operator may do everything a viewer may."""

    viewer = "viewer"
    operator = "operator"


RANK = {Role.viewer: 1, Role.operator: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: the token's id, name and role (None for an open read)."""

    token_id: int | None
    name: str
    role: Role | None


ANONYMOUS = Principal(token_id=None, name="anonymous", role=None)
bearer = HTTPBearer(auto_error=False, description="API token: `dvc tokens create --role operator|viewer`")


def new_token() -> str:
    """Return a new random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the stored form of a token: hex SHA-256 (a random 256-bit token needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def find_token(connection: asyncpg.Connection | asyncpg.Pool, token: str) -> Principal | None:
    """Return the principal of a valid (known, unrevoked, unexpired) token, else None."""
    row = await connection.fetchrow(
        """SELECT token_id, name, role FROM api_tokens
           WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)""",
        hash_token(token),
        datetime.now(UTC),
    )
    return None if row is None else Principal(row["token_id"], row["name"], Role(row["role"]))


def refuse(status_code: int, detail: str) -> HTTPException:
    """Return the 401/403 error (401 tells the client to send a Bearer token)."""
    headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
    return HTTPException(status_code=status_code, detail=detail, headers=headers)


def require(role: Role, *, open_setting: str | None = None) -> Any:
    """Return a dependency that lets a request through with a token of at least `role`.

    `open_setting` names a boolean in `app.state` (e.g. "read_public") that opens the route to
    everyone when true (KPI reads inside a trusted network).
    """

    async def authorize(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        if open_setting is not None and getattr(request.app.state, open_setting, False):
            return ANONYMOUS
        if credentials is None:
            raise refuse(401, "cần mã truy cập (Bearer) / an API token is required")
        principal = await find_token(request.app.state.pool, credentials.credentials)
        if principal is None:
            raise refuse(401, "mã truy cập không hợp lệ, đã hết hạn hoặc đã bị thu hồi / invalid API token")
        if principal.role is None or RANK[principal.role] < RANK[role]:
            raise refuse(
                403, f"mã truy cập không có quyền {role.name} / this token lacks the {role.name} role"
            )
        return principal

    return Depends(authorize)


VIEWER = require(Role.viewer)
OPERATOR = require(Role.operator)
