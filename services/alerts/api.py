"""JSON API of alerts: states and alerts, acknowledgement (API and signed link), silences, notifications.

Every route needs a Bearer API token (shared/auth.py): `viewer` reads alert states and silences,
`operator` also reads an alert's deliveries (recipients' addresses) and writes (acknowledges,
silences). The only routes meant for recipients are the acknowledgement link's page and its form,
which need no login: the link's signed token acknowledges that one alert, for that recipient, until
it expires, and a GET on the link changes nothing.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field, field_validator

from services.alerts import ackpage, queries
from services.alerts.lifecycle import Engine
from services.alerts.signing import AckGrant, InvalidLink, ack_token, read_ack_token
from shared.auth import OPERATOR, VIEWER, Principal
from shared.kpis import KPI_BY_ID
from shared.pagelinks import InvalidPageLink, read_page_token

router = APIRouter(prefix="/api/v1")
Operator = Annotated[Principal, OPERATOR]
MAX_FORM_BYTES = 4096
StateName = Literal["ok", "at_risk", "below_target", "insufficient_data"]
NotificationStatus = Literal["pending", "sent", "failed", "cancelled", "expired"]
ChannelName = Literal["email", "webhook", "grafana"]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class OpenAlert(BaseModel):
    """The open alert of a state."""

    alert_id: int
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None


class AlertStateOut(BaseModel):
    """The alert state of a unit's KPI for a period, with its figures."""

    unit_id: str
    kpi: str
    kpi_name: str
    period: str
    state: StateName
    since: datetime
    numerator: int
    denominator: int
    figures: dict[str, Any]
    evaluated_at: datetime
    alert: OpenAlert | None


class Acknowledgement(BaseModel):
    """One acknowledgement of an alert."""

    acknowledged_by: str
    via: str
    note: str
    acknowledged_at: datetime


class Delivery(BaseModel):
    """One notification of an alert and its delivery result."""

    notification_id: int
    kind: str
    channel: str
    recipient: str
    recipient_unit_id: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class AlertOut(BaseModel):
    """An alert with its history: notifications and acknowledgements."""

    alert_id: int
    unit_id: str
    kpi: str
    period: str
    opened_at: datetime
    figures: dict[str, Any]
    resolved_at: datetime | None
    resolution: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None
    escalated_to: str | None
    notifications: list[Delivery]
    acknowledgements: list[Acknowledgement]


class AckIn(BaseModel):
    """Who acknowledges, and an optional note."""

    by: Text
    note: Annotated[str, Field(max_length=1000)] = ""


class SilenceIn(BaseModel):
    """A silence to create: no unit / KPI means every unit / KPI."""

    unit_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    kpi: str | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    created_by: Text
    comment: Annotated[str, Field(max_length=1000)] = ""

    @field_validator("kpi")
    @classmethod
    def known_kpi(cls, value: str | None) -> str | None:
        """Accept only catalogue KPIs."""
        if value is not None and value not in KPI_BY_ID:
            raise ValueError(f"không có chỉ số này / unknown KPI {value!r}")
        return value


class SilenceOut(BaseModel):
    """A stored silence."""

    silence_id: int
    unit_id: str | None
    kpi: str | None
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime


def pool_of(request: Request) -> asyncpg.Pool:
    """Return the app's database pool."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def state_out(row: asyncpg.Record) -> AlertStateOut:
    """Convert a `list_states` row."""
    alert = OpenAlert(**{k: row[k] for k in OpenAlert.model_fields}) if row["alert_id"] is not None else None
    fields = {k: row[k] for k in AlertStateOut.model_fields if k not in ("alert", "kpi_name")}
    return AlertStateOut(**fields, kpi_name=KPI_BY_ID[row["kpi"]].name_vi, alert=alert)


@router.get(
    "/alerts",
    response_model=list[AlertStateOut],
    summary="Alert states of units' KPIs (viewer)",
    dependencies=[VIEWER],
)
async def list_alerts(
    request: Request,
    state: StateName | None = None,
    unit_id: str | None = None,
    period: Annotated[str | None, Query(description="month:YYYY-MM or year:YYYY")] = None,
) -> list[AlertStateOut]:
    """Every evaluated (unit, KPI, period), filtered by state, unit or period, with its open alert."""
    async with pool_of(request).acquire() as connection:
        rows = await queries.list_states(connection, state=state, unit_id=unit_id, period=period)
    return [state_out(row) for row in rows]


async def read_alert(connection: asyncpg.Connection, alert_id: int) -> AlertOut:
    """Return an alert with its history, or raise 404."""
    row = await queries.fetch_alert(connection, alert_id=alert_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"không có cảnh báo này / unknown alert {alert_id}")
    notifications = [
        Delivery(**dict(r)) for r in await queries.fetch_notifications(connection, alert_id=alert_id)
    ]
    acks = [
        Acknowledgement(**{k: r[k] for k in Acknowledgement.model_fields})
        for r in await queries.fetch_acknowledgements(connection, alert_id=alert_id)
    ]
    return AlertOut(**dict(row), notifications=notifications, acknowledgements=acks)


@router.get(
    "/alerts/{alert_id}",
    response_model=AlertOut,
    summary="An alert and its history, with recipients (operator)",
    dependencies=[OPERATOR],
)
async def get_alert(request: Request, alert_id: int) -> AlertOut:
    """The alert, who was notified through which channel with which result, and its acknowledgements."""
    async with pool_of(request).acquire() as connection:
        return await read_alert(connection, alert_id)


def signed_by(principal: Principal, claimed: str) -> str:
    """Who did it: the name the caller gives, and the token it used."""
    return f"{claimed} [mã truy cập / token: {principal.name}]"


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, summary="Acknowledge an alert (operator)")
async def acknowledge(request: Request, alert_id: int, body: AckIn, principal: Operator) -> AlertOut:
    """Acknowledge an alert (idempotent: the first acknowledgement stops the escalation)."""
    async with pool_of(request).acquire() as connection, connection.transaction():
        await queries.acknowledge_alert(
            connection,
            alert_id=alert_id,
            by=signed_by(principal, body.by),
            via="api",
            note=body.note,
            now=datetime.now(UTC),
        )
        return await read_alert(connection, alert_id)


def check_link(request: Request, alert_id: int, token: str) -> AckGrant:
    """Return what a link's token grants, or raise InvalidLink."""
    engine: Engine = request.app.state.engine
    return read_ack_token(engine.links.signing_key, alert_id, token, now=datetime.now(UTC))


def recipient_name(request: Request, grant: AckGrant) -> str:
    """Return "<head> (<unit>)" of the link's recipient, or the unit id if the registry lost it."""
    engine: Engine = request.app.state.engine
    unit = engine.directory.units.get(grant.recipient_unit_id)
    return f"{unit.head_name} ({unit.name})" if unit else grant.recipient_unit_id


def alert_view(request: Request, row: asyncpg.Record) -> ackpage.AlertView:
    """Describe an alert for the link's pages."""
    engine: Engine = request.app.state.engine
    return ackpage.describe(row, engine.directory.units.get(row["unit_id"]))


@router.get(
    "/alerts/{alert_id}/ack",
    response_class=HTMLResponse,
    summary="The signed link of a message: a confirmation page (changes nothing)",
)
async def confirm_by_link(request: Request, alert_id: int, token: str = "", page: str = "") -> HTMLResponse:
    """Show the alert and a button; a wrong, expired or malformed token gets a 403 page.

    `page` instead of `token`: the signed link of the alert's unit page (shared/pagelinks.py), whose
    acknowledge button leads here; the form then carries a fresh acknowledgement token of its recipient.
    """
    try:
        grant = check_link(request, alert_id, token) if token or not page else None
    except InvalidLink as exc:
        return ackpage.refused_page(str(exc))
    async with pool_of(request).acquire() as connection:
        row = await queries.fetch_alert(connection, alert_id=alert_id)
        if row is None:
            return ackpage.refused_page(f"không có cảnh báo số {alert_id} / unknown alert", 404)
        view = alert_view(request, row)
    if grant is None:
        try:
            token, grant = grant_from_page(request, row, page)
        except InvalidLink as exc:
            return ackpage.refused_page(str(exc))
    return ackpage.confirmation_page(view, token, recipient_name(request, grant))


def grant_from_page(request: Request, row: asyncpg.Record, page: str) -> tuple[str, AckGrant]:
    """Return an acknowledgement token and grant for the recipient of a unit page link of the alert's unit."""
    engine: Engine = request.app.state.engine
    now = datetime.now(UTC)
    if engine.links.pages_key is None:
        raise InvalidLink("liên kết trang đơn vị chưa được bật / page links are not enabled")
    try:
        page_grant = read_page_token(engine.links.pages_key, page, now=now)
    except InvalidPageLink as exc:
        raise InvalidLink(str(exc)) from exc
    if page_grant.unit_id != row["unit_id"]:
        raise InvalidLink("liên kết của đơn vị khác / a link of another unit")
    expires = min(page_grant.expires, int(now.timestamp() + engine.links.ack_link_seconds))
    token = ack_token(engine.links.signing_key, row["alert_id"], page_grant.recipient_unit_id, expires)
    return token, read_ack_token(engine.links.signing_key, row["alert_id"], token, now=now)


@router.post(
    "/alerts/{alert_id}/ack/confirm",
    response_class=HTMLResponse,
    summary="The confirmation page's form: acknowledge on behalf of the link's recipient",
)
async def acknowledge_by_link(request: Request, alert_id: int) -> HTMLResponse:
    """Acknowledge with the token posted by the confirmation page's form."""
    body = await request.body()
    fields = parse_qs(body.decode("utf-8", "replace")) if len(body) <= MAX_FORM_BYTES else {}
    try:
        grant = check_link(request, alert_id, (fields.get("token") or [""])[0])
    except InvalidLink as exc:
        return ackpage.refused_page(str(exc))
    async with pool_of(request).acquire() as connection, connection.transaction():
        row = await queries.acknowledge_alert(
            connection,
            alert_id=alert_id,
            by=f"{recipient_name(request, grant)} qua liên kết trong thư",
            via="link",
            note="",
            now=datetime.now(UTC),
        )
        if row is None:
            return ackpage.refused_page(f"không có cảnh báo số {alert_id} / unknown alert", 404)
        view = alert_view(request, row)
    return ackpage.done_page(view)


@router.post("/silences", response_model=SilenceOut, status_code=201, summary="Create a silence (operator)")
async def create_silence(request: Request, body: SilenceIn, principal: Operator) -> SilenceOut:
    """Hold back notices of a unit and/or KPI (all if omitted) between starts_at (default now) and ends_at."""
    starts_at = body.starts_at or datetime.now(UTC)
    if body.ends_at <= starts_at:
        raise HTTPException(
            status_code=400, detail="ends_at phải sau starts_at / ends_at must follow starts_at"
        )
    fields = {
        **body.model_dump(),
        "starts_at": starts_at,
        "created_by": signed_by(principal, body.created_by),
    }
    async with pool_of(request).acquire() as connection:
        row = await queries.insert_silence(connection, fields=fields)
    return SilenceOut(**dict(row))


@router.get(
    "/silences", response_model=list[SilenceOut], summary="List silences (viewer)", dependencies=[VIEWER]
)
async def list_silences(request: Request, include_expired: bool = False) -> list[SilenceOut]:
    """Silences not yet ended (every silence with include_expired=true), newest first."""
    async with pool_of(request).acquire() as connection:
        rows = await queries.fetch_silences(
            connection, active_after=None if include_expired else datetime.now(UTC)
        )
    return [SilenceOut(**dict(row)) for row in rows]


@router.delete(
    "/silences/{silence_id}", status_code=204, summary="End a silence (operator)", dependencies=[OPERATOR]
)
async def delete_silence(request: Request, silence_id: int) -> Response:
    """End a silence now (it stays in the history)."""
    async with pool_of(request).acquire() as connection:
        if not await queries.expire_silence(connection, silence_id=silence_id, now=datetime.now(UTC)):
            raise HTTPException(
                status_code=404, detail=f"không có khoảng tắt này / unknown silence {silence_id}"
            )
    return Response(status_code=204)


class NotificationOut(Delivery):
    """A notification of the outbox: what it is about, and where its delivery stands."""

    alert_id: int | None
    unit_id: str
    kpi: str | None
    first_attempt_at: datetime | None
    next_attempt_at: datetime
    failed_at: datetime | None


@router.get(
    "/notifications",
    response_model=list[NotificationOut],
    summary="Notifications and their delivery, with recipients (operator)",
    dependencies=[OPERATOR],
)
async def list_notifications(
    request: Request,
    status: NotificationStatus | None = None,
    channel: ChannelName | None = None,
    unit_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[NotificationOut]:
    """Notifications, newest first, filtered by status (`failed`: given up after the retry horizon), channel or unit."""
    async with pool_of(request).acquire() as connection:
        rows = await queries.list_notifications(
            connection, status=status, channel=channel, unit_id=unit_id, limit=limit
        )
    return [NotificationOut(**dict(row)) for row in rows]
