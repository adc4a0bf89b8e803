"""Send queued notifications: one sender loop per channel, retries with exponential backoff.

Each channel (email, webhook, grafana) drains its own rows of the `notifications` outbox, so a
failing or slow channel never delays the others, and a row is claimed for a lease (several instances
may run). A failed attempt is retried after `ALERTS_RETRY_BASE_SECONDS * 2**(attempt - 1)`; after
`ALERTS_RETRY_MAX_ATTEMPTS` attempts the row is `failed` with its last error. Silenced notices wait
for the end of the silence, looked at again every evaluation interval (no attempt counted); digests not delivered within their day expire.

Channels:
- email: SMTP (DVC_SMTP_HOST/PORT, STARTTLS when offered), From DVC_SMTP_FROM, a text and an HTML part.
- webhook: `POST <head_webhook_url>` with the JSON body of the notice and the headers
  `Content-Type: application/json`, `X-DVC-Event: firing|resolved|escalation|digest`,
  `X-DVC-Delivery: <notification id>` (the same on retries: deduplicate on it),
  `X-DVC-Timestamp: <unix seconds>` and
  `X-DVC-Signature: sha256=<hex HMAC-SHA256(DVC_WEBHOOK_SECRET, "<timestamp>." + raw body)>`.
  Receivers recompute the signature over the raw bytes, compare in constant time and refuse stale
  timestamps. Any 2xx is success; anything else is retried.
- grafana: `POST {DVC_GRAFANA_URL}/api/annotations` through grafana-client with the service-account
  token DVC_GRAFANA_TOKEN (tags `dvc-monitor`, `unit:<id>`, `kpi:<id>`, `period:<p>`, `firing|resolved`).
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import asyncpg
import httpx
import orjson
from grafana_client.api import AsyncGrafanaApi
from prometheus_client import Counter

from services.alerts import queries
from services.alerts.lifecycle import Engine
from services.alerts.notices import CHANNELS
from services.alerts.rules import Silence, silenced_until
from services.alerts.signing import webhook_signature
from shared.config import AlertsSettings

logger = logging.getLogger(__name__)

CLAIM_LIMIT = 50
NOTIFICATIONS = Counter(
    "alerts_notifications_total",
    "Notification delivery attempts, by channel and result.",
    ["channel", "result"],
)
for _channel in CHANNELS:
    for _result in ("sent", "retry", "failed"):
        NOTIFICATIONS.labels(_channel, _result)

Sender = Callable[[asyncpg.Record], Awaitable[None]]


def email_message(row: asyncpg.Record, settings: AlertsSettings) -> EmailMessage:
    """Build the e-mail of a notification (headers validated by the email package)."""
    message = EmailMessage()
    message["Subject"] = row["subject"]
    message["From"] = settings.SMTP_FROM
    message["To"] = Address(addr_spec=row["recipient"])
    message["Message-ID"] = make_msgid(idstring=f"dvc-{row['notification_id']}")
    message["X-DVC-Notification"] = str(row["notification_id"])
    message.set_content(row["body_text"])
    if row["body_html"]:
        message.add_alternative(row["body_html"], subtype="html")
    return message


def email_sender(settings: AlertsSettings) -> Sender:
    """Return the SMTP sender."""

    async def send(row: asyncpg.Record) -> None:
        await aiosmtplib.send(
            email_message(row, settings),
            hostname=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            timeout=settings.ALERTS_CHANNEL_TIMEOUT_SECONDS,
        )

    return send


def webhook_sender(settings: AlertsSettings, client: httpx.AsyncClient) -> Sender:
    """Return the signed-webhook sender."""
    secret = settings.WEBHOOK_SECRET.get_secret_value()

    async def send(row: asyncpg.Record) -> None:
        body = orjson.dumps(row["payload"])
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "dvc-monitor-alerts/1",
            "X-DVC-Event": row["kind"],
            "X-DVC-Delivery": str(row["notification_id"]),
            "X-DVC-Timestamp": str(timestamp),
            "X-DVC-Signature": webhook_signature(secret, timestamp, body),
        }
        response = await client.post(row["recipient"], content=body, headers=headers)
        response.raise_for_status()

    return send


def grafana_sender(settings: AlertsSettings) -> Sender:
    """Return the Grafana annotation sender (POST /api/annotations)."""
    token = settings.GRAFANA_TOKEN.get_secret_value() if settings.GRAFANA_TOKEN else None
    grafana = AsyncGrafanaApi.from_url(
        (settings.GRAFANA_URL or "").rstrip("/") + "/",  # only used with a Grafana URL (lifecycle.py)
        credential=token,
        timeout=settings.ALERTS_CHANNEL_TIMEOUT_SECONDS,
    )

    async def send(row: asyncpg.Record) -> None:
        payload = row["payload"]
        await grafana.annotations.add_annotation(
            time_from=payload["time"], tags=payload["tags"], text=payload["text"]
        )

    return send


async def send_forever(pool: asyncpg.Pool, *, engine: Engine, channel: str) -> None:
    """Drain one channel's due notifications; sleep until woken or the poll interval passes."""
    settings = engine.settings
    async with httpx.AsyncClient(
        timeout=settings.ALERTS_CHANNEL_TIMEOUT_SECONDS, follow_redirects=False
    ) as client:
        senders = {
            "email": lambda: email_sender(settings),
            "webhook": lambda: webhook_sender(settings, client),
            "grafana": lambda: grafana_sender(settings),
        }
        sender = senders[channel]()
        wake = engine.wakes[channel]
        while True:
            wake.clear()
            try:
                sent = await send_due(pool, engine, channel, sender)
            except Exception:
                logger.exception("%s sender failed; retrying at the next poll", channel)
                sent = 0
            if sent == 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=settings.ALERTS_SEND_POLL_SECONDS)
                except TimeoutError:
                    pass


async def send_due(pool: asyncpg.Pool, engine: Engine, channel: str, sender: Sender) -> int:
    """Claim and deliver the due notifications of a channel concurrently; return how many were claimed."""
    now = datetime.now(UTC)
    lease = engine.settings.ALERTS_CHANNEL_TIMEOUT_SECONDS + 30
    async with pool.acquire() as connection:
        rows = await queries.claim_due_notifications(
            connection, channel=channel, now=now, lease_seconds=lease, limit=CLAIM_LIMIT
        )
        silences = active_silences(await queries.fetch_silences(connection, active_after=now)) if rows else []
    await asyncio.gather(*(deliver(pool, engine, row, sender, silences) for row in rows))
    return len(rows)


def active_silences(rows: list[asyncpg.Record]) -> list[Silence]:
    """Convert silence rows for matching."""
    return [
        Silence(r["unit_id"], r["kpi"], r["starts_at"].timestamp(), r["ends_at"].timestamp()) for r in rows
    ]


async def deliver(
    pool: asyncpg.Pool, engine: Engine, row: asyncpg.Record, sender: Sender, silences: list[Silence]
) -> None:
    """Attempt one notification and record the result (or defer it while silenced)."""
    now = datetime.now(UTC)
    notification_id = int(row["notification_id"])
    until = silenced_until(silences, unit_id=row["unit_id"], kpi=row["kpi"], now=now.timestamp())
    async with pool.acquire() as connection:
        if until is not None:  # look again at the silence's end, or sooner in case it is deleted
            recheck = min(until, now.timestamp() + engine.settings.ALERTS_EVALUATION_SECONDS)
            await queries.defer_notification(
                connection, notification_id=notification_id, until=datetime.fromtimestamp(recheck, UTC)
            )
            return
        if row["expires_at"] is not None and row["expires_at"] <= now:
            await queries.defer_notification(
                connection, notification_id=notification_id, until=now, status="expired"
            )
            return
    error = await attempt(sender, row, engine.settings.ALERTS_CHANNEL_TIMEOUT_SECONDS)
    await record_attempt(pool, engine.settings, row, error)


async def attempt(sender: Sender, row: asyncpg.Record, limit_seconds: float) -> str | None:
    """Send once; return the error text, or None on success."""
    try:
        async with asyncio.timeout(limit_seconds):
            await sender(row)
    except Exception as exc:  # every channel error is retried; the text is kept for the history
        return f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
    return None


async def record_attempt(
    pool: asyncpg.Pool, settings: AlertsSettings, row: asyncpg.Record, error: str | None
) -> None:
    """Store an attempt's result: sent, failed for good, or pending with the next backoff."""
    now = datetime.now(UTC)
    attempts = int(row["attempts"]) + 1
    if error is None:
        status, result, next_at = "sent", "sent", now
    elif attempts >= settings.ALERTS_RETRY_MAX_ATTEMPTS:
        status, result, next_at = "failed", "failed", now
    else:
        delay = settings.ALERTS_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
        status, result, next_at = "pending", "retry", now + timedelta(seconds=delay)
    async with pool.acquire() as connection:
        await queries.record_delivery(
            connection,
            notification_id=int(row["notification_id"]),
            status=status,
            attempts=attempts,
            next_attempt_at=next_at,
            error=error,
            now=now,
        )
    NOTIFICATIONS.labels(row["channel"], result).inc()
    if error is not None:
        logger.warning(
            "notification %s via %s: %s (%s)", row["notification_id"], row["channel"], error, status
        )
