"""`dvc tokens`: Bearer API tokens of the metrics and alerts APIs (DVC_DATABASE_URL: the admin DSN).

The CLI is the only writer of `api_tokens`; the services only read it. A token is printed once, at
creation; only its SHA-256 is stored, so a lost token is revoked and replaced, never recovered.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import asyncpg
import typer

from shared.auth import SHOWN_PREFIX_LENGTH, Role, hash_token, new_token
from shared.config import Settings

T = TypeVar("T")
app = typer.Typer(help="Mã truy cập API / API tokens.", no_args_is_help=True)


def with_connection(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on a connection to DVC_DATABASE_URL."""

    async def run() -> T:
        connection = await asyncpg.connect(Settings().DATABASE_URL.get_secret_value())
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(run())


async def create_token(
    connection: asyncpg.Connection, *, name: str, role: Role, expires_at: datetime | None = None
) -> tuple[int, str]:
    """Store a new token's hash; return its id and the token (shown once, never stored)."""
    token = new_token()
    token_id: int = await connection.fetchval(
        """INSERT INTO api_tokens (name, role, token_hash, prefix, expires_at)
           VALUES ($1, $2, $3, $4, $5) RETURNING token_id""",
        name,
        role.name,
        hash_token(token),
        token[:SHOWN_PREFIX_LENGTH],
        expires_at,
    )
    return token_id, token


async def list_tokens(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    """Return every token (never the hash), oldest first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        """SELECT token_id, name, role, prefix, created_at, expires_at, revoked_at
           FROM api_tokens ORDER BY token_id"""
    )
    return rows


async def revoke_token(connection: asyncpg.Connection, token_id: int) -> bool:
    """Revoke a token now; return False if no unrevoked token has this id."""
    status: str = await connection.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL", token_id
    )
    return status == "UPDATE 1"


@app.command("create")
def create_command(
    name: Annotated[str, typer.Option(help="who holds it, e.g. 'Nguyễn Văn A, Sở TTTT'")],
    role: Annotated[Role, typer.Option(help="viewer: read; operator: read and write")],
    days: Annotated[
        int | None, typer.Option(min=1, help="valid this many days (default: until revoked)")
    ] = None,
) -> None:
    """Tạo mã truy cập / Create a token (printed once)."""
    expires_at = datetime.now(UTC) + timedelta(days=days) if days else None
    token_id, token = with_connection(lambda c: create_token(c, name=name, role=role, expires_at=expires_at))
    typer.echo(
        f"Mã số / id {token_id}, vai trò / role {role.name}. Lưu mã dưới đây ngay, sẽ không hiện lại "
        "/ store it now, it is not shown again:",
        err=True,
    )
    typer.echo(token)


@app.command("list")
def list_command() -> None:
    """Liệt kê mã truy cập / List tokens (never the tokens themselves)."""
    for row in with_connection(list_tokens):
        status = "đã thu hồi / revoked" if row["revoked_at"] else "hiệu lực / active"
        if not row["revoked_at"] and row["expires_at"] and row["expires_at"] <= datetime.now(UTC):
            status = "hết hạn / expired"
        expires = f"{row['expires_at']:%Y-%m-%d}" if row["expires_at"] else "—"
        typer.echo(
            f"{row['token_id']}\t{row['role']}\t{row['prefix']}…\t{row['name']}\t"
            f"{row['created_at']:%Y-%m-%d}\t{expires}\t{status}"
        )


@app.command("revoke")
def revoke_command(token_id: Annotated[int, typer.Argument(help="id shown by `dvc tokens list`")]) -> None:
    """Thu hồi mã truy cập / Revoke a token (takes effect at the next request)."""
    if not with_connection(lambda c: revoke_token(c, token_id)):
        typer.echo(f"Không có mã còn hiệu lực số {token_id} / no active token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Đã thu hồi / revoked: {token_id}")
