"""Send queued notifications: one sender loop per channel, retries with capped, jittered backoff.

Each channel (email, webhook, grafana) drains its own rows of the `notifications` outbox, so a
failing or slow channel never delays the others, and a row is claimed for a lease (several instances
may run). A failed attempt n is retried after a delay drawn between half and all of
`min(ALERTS_RETRY_MAX_DELAY_SECONDS, ALERTS_RETRY_BASE_SECONDS * 2**(n-1))` ("equal jitter": a burst
of failures does not retry in lockstep), until ALERTS_RETRY_HORIZON_SECONDS (72 h) after the first
attempt; the last retry is made at the horizon, then the row is `failed` with its last error
(API `GET /api/v1/notifications?status=failed`, gauge `alerts_notifications_failed`, alert rule
DvcNotificationsFailed). When a notification that had failed goes through, the channel works again:
the channel's other waiting retries are made due at once instead of waiting out their backoff.
Silenced notices wait for the end of the silence, and the notices about a unit whose input data lags
(holds.py) for it to catch up, looked at again every evaluation interval (no attempt counted); digests not delivered within their day expire (the next day's digest lists the
same cases again). A digest is rebuilt from the data before every attempt (digests.py): a case
resolved since it was queued is not listed, and a digest with nothing left to say is cancelled (its
day's key is freed: an offence later that day still gets a digest).
Alert e-mails are released by grouping.py (one message per recipient per group window); a group
message is silenced only through its members, checked when it was composed.

Channels:
- email: SMTP (DVC_SMTP_HOST/PORT; DVC_SMTP_TLS=starttls requires STARTTLS, tls is implicit TLS, off is
  plain SMTP; optional DVC_SMTP_USERNAME/PASSWORD), From DVC_SMTP_FROM, a text and an HTML part, a
  `Date:` of when the notice was written and a `Message-ID: <dvc.<notification id>.<created>@<domain>>`
  that stays the same on every retry, so mail servers and clients can drop a duplicate.
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
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtplib
import asyncpg
import httpx
import orjson
from grafana_client.api import AsyncGrafanaApi
from prometheus_client import Counter, Gauge

from services.alerts import queries
from services.alerts.digests import refreshed_digest
from services.alerts.lifecycle import Engine
from services.alerts.rules import Silence, silenced_until
from services.alerts.signing import webhook_signature
from shared.backoff import Retrying
from shared.config import AlertsSettings
from shared.kpis import LOCAL_TZ
from shared.notifications import CHANNELS

logger = logging.getLogger(__name__)

CLAIM_LIMIT = 50
LEASE_EXTRA_SECONDS = 30
FAILED_WINDOW = timedelta(hours=24)  # a notification given up stays on the gauge (and the alert) this long
NOTIFICATIONS = Counter(
    "alerts_notifications_total",
    "Notification delivery attempts, by channel and result.",
    ["channel", "result"],
)
RETRYING = Gauge(
    "alerts_notifications_retrying",
    "Notifications whose last attempt failed, waiting for a retry.",
    ["channel"],
)
OLDEST_RETRY = Gauge(
    "alerts_notifications_oldest_retry_seconds",
    "Seconds since the first attempt of the oldest notification still waiting for a retry (0: none).",
    ["channel"],
)
FAILED = Gauge(
    "alerts_notifications_failed",
    "Notifications given up (retried until the horizon) in the last 24 hours.",
    ["channel"],
)
for _channel in CHANNELS:
    for _result in ("sent", "retry", "failed"):
        NOTIFICATIONS.labels(_channel, _result)
    for _gauge in (RETRYING, OLDEST_RETRY, FAILED):
        _gauge.labels(_channel)

Sender = Callable[[Mapping[str, Any]], Awaitable[None]]


def message_id(row: Mapping[str, Any], domain: str) -> str:
    """Return the Message-ID of a notification: the same on every retry, unique per notification."""
    return f"<dvc.{row['notification_id']}.{row['created_at']:%Y%m%d%H%M%S}@{domain}>"


def message_domain(settings: AlertsSettings) -> str:
    """Return the domain of Message-IDs: DVC_SMTP_MESSAGE_ID_DOMAIN, or the sender address's domain."""
    return settings.SMTP_MESSAGE_ID_DOMAIN or Address(addr_spec=settings.SMTP_FROM).domain or "localhost"


def email_message(row: Mapping[str, Any], settings: AlertsSettings) -> EmailMessage:
    """Build the e-mail of a notification (headers validated by the email package)."""
    message = EmailMessage()
    message["Subject"] = row["subject"]
    message["From"] = settings.SMTP_FROM
    message["To"] = Address(addr_spec=row["recipient"])
    message["Date"] = format_datetime(row["created_at"].astimezone(LOCAL_TZ))
    message["Message-ID"] = message_id(row, message_domain(settings))
    message["X-DVC-Notification"] = str(row["notification_id"])
    message.set_content(row["body_text"])
    if row["body_html"]:
        message.add_alternative(row["body_html"], subtype="html")
    return message


def email_sender(settings: AlertsSettings) -> Sender:
    """Return the SMTP sender (STARTTLS required unless DVC_SMTP_TLS says otherwise)."""
    password = settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None

    async def send(row: Mapping[str, Any]) -> None:
        await aiosmtplib.send(
            email_message(row, settings),
            hostname=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            timeout=settings.ALERTS_CHANNEL_TIMEOUT_SECONDS,
            use_tls=settings.SMTP_TLS == "tls",
            start_tls=settings.SMTP_TLS == "starttls",  # True: fail when the server does not offer it
            username=settings.SMTP_USERNAME,
            password=password,
            cert_bundle=settings.SMTP_CA_FILE,
        )

    return send


def webhook_sender(settings: AlertsSettings, client: httpx.AsyncClient) -> Sender:
    """Return the signed-webhook sender."""
    secret = settings.WEBHOOK_SECRET.get_secret_value()

    async def send(row: Mapping[str, Any]) -> None:
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

    async def send(row: Mapping[str, Any]) -> None:
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
        retrying = Retrying(f"{channel}_sender", logger)
        while True:
            wake.clear()
            try:
                sent = await send_due(pool, engine, channel, sender)
            except Exception as exc:  # the database, not a channel: channel errors are kept per notification
                await retrying.wait_after(exc)
                continue
            retrying.succeeded()
            if sent == 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout=settings.ALERTS_SEND_POLL_SECONDS)
                except TimeoutError:
                    pass


async def send_due(pool: asyncpg.Pool, engine: Engine, channel: str, sender: Sender) -> int:
    """Claim and deliver the due notifications of a channel concurrently; return how many were claimed."""
    now = datetime.now(UTC)
    lease = lease_seconds(engine.settings)
    async with pool.acquire() as connection:
        rows = await queries.claim_due_notifications(
            connection, channel=channel, now=now, lease_seconds=lease, limit=CLAIM_LIMIT
        )
        silences = active_silences(await queries.fetch_silences(connection, active_after=now)) if rows else []
    await asyncio.gather(*(deliver(pool, engine, row, sender, silences) for row in rows))
    return len(rows)


def subject_units(engine: Engine, row: Mapping[str, Any]) -> list[str]:
    """Return the units a notification tells about: every unit its recipient heads for a digest e-mail."""
    if row["kind"] == "digest" and row["channel"] == "email":
        address = str(row["recipient"]).lower()
        return [u.unit_id for u in engine.directory.units.values() if u.head_email.lower() == address]
    return [row["unit_id"]]


def active_silences(rows: list[asyncpg.Record]) -> list[Silence]:
    """Convert silence rows for matching."""
    return [
        Silence(r["unit_id"], r["kpi"], r["starts_at"].timestamp(), r["ends_at"].timestamp()) for r in rows
    ]


async def deliver(
    pool: asyncpg.Pool, engine: Engine, row: Mapping[str, Any], sender: Sender, silences: list[Silence]
) -> None:
    """Attempt one notification and record the result (or defer it while silenced)."""
    now = datetime.now(UTC)
    notification_id = int(row["notification_id"])
    until = None
    if row["kind"] != "group":
        until = silenced_until(silences, unit_id=row["unit_id"], kpi=row["kpi"], now=now.timestamp())
        if until is None and engine.holds.holds_any(subject_units(engine, row)):
            until = now.timestamp() + engine.settings.ALERTS_EVALUATION_SECONDS  # its data lags (holds.py)
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
        if row["kind"] == "digest" and row["channel"] in ("email", "webhook"):
            fresh = await refreshed_digest(connection, engine, row, now)
            if fresh is None:  # everything it listed was resolved meanwhile
                await queries.cancel_empty_digest(connection, notification_id=notification_id)
                return
            row = fresh
    error = await attempt(sender, row, engine.settings.ALERTS_CHANNEL_TIMEOUT_SECONDS)
    await record_attempt(pool, engine, row, error)


async def attempt(sender: Sender, row: Mapping[str, Any], limit_seconds: float) -> str | None:
    """Send once; return the error text, or None on success."""
    try:
        async with asyncio.timeout(limit_seconds):
            await sender(row)
    except Exception as exc:  # every channel error is retried; the text is kept for the history
        return f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
    return None


def lease_seconds(settings: AlertsSettings) -> float:
    """Return how long a claimed row is left to its sender."""
    return settings.ALERTS_CHANNEL_TIMEOUT_SECONDS + LEASE_EXTRA_SECONDS


def retry_delay(
    attempts: int, *, base: float, cap: float, draw: Callable[[], float] = random.random
) -> float:
    """Return the delay after failed attempt n: between half and all of min(cap, base * 2**(n-1))."""
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 60))
    return ceiling / 2 + draw() * ceiling / 2


def next_step(
    row: Mapping[str, Any], settings: AlertsSettings, error: str | None, now: datetime
) -> tuple[str, str, datetime]:
    """Return (status, result, next attempt) after an attempt: sent, pending with a backoff, or failed
    once the horizon after the first attempt has passed (the last retry is made at the horizon)."""
    if error is None:
        return "sent", "sent", now
    horizon = (row["first_attempt_at"] or now) + timedelta(seconds=settings.ALERTS_RETRY_HORIZON_SECONDS)
    if now >= horizon:
        return "failed", "failed", now
    delay = retry_delay(
        int(row["attempts"]) + 1,
        base=settings.ALERTS_RETRY_BASE_SECONDS,
        cap=settings.ALERTS_RETRY_MAX_DELAY_SECONDS,
    )
    return "pending", "retry", min(now + timedelta(seconds=delay), horizon)


async def record_attempt(
    pool: asyncpg.Pool, engine: Engine, row: Mapping[str, Any], error: str | None
) -> None:
    """Store an attempt's result; after a recovery, make the channel's other waiting retries due now."""
    now = datetime.now(UTC)
    status, result, next_at = next_step(row, engine.settings, error, now)
    channel = row["channel"]
    async with pool.acquire() as connection:
        await queries.record_delivery(
            connection,
            notification_id=int(row["notification_id"]),
            status=status,
            attempts=int(row["attempts"]) + 1,
            next_attempt_at=next_at,
            error=error,
            now=now,
        )
        recovered = error is None and row["last_error"] is not None
        if recovered and await queries.hasten_retries(
            connection, channel=channel, now=now, lease_seconds=lease_seconds(engine.settings)
        ):
            engine.wakes[channel].set()
    NOTIFICATIONS.labels(channel, result).inc()
    if error is not None:
        logger.warning("notification %s via %s: %s (%s)", row["notification_id"], channel, error, status)


async def refresh_delivery_gauges(connection: asyncpg.Connection, now: datetime) -> None:
    """Set the retrying, oldest-retry and failed gauges from the database (every instance agrees)."""
    rows = {
        row["channel"]: row
        for row in await queries.count_delivery_problems(
            connection, now=now, failed_since=now - FAILED_WINDOW
        )
    }
    for channel in CHANNELS:
        row = rows.get(channel)
        RETRYING.labels(channel).set(int(row["retrying"]) if row else 0)
        OLDEST_RETRY.labels(channel).set(float(row["oldest"] or 0) if row else 0)
        FAILED.labels(channel).set(int(row["failed"]) if row else 0)
