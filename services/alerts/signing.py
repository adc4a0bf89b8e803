"""HMAC-SHA256 signatures: acknowledgement links and outgoing webhook calls.

Acknowledgement link: `DVC_PUBLIC_URL/api/v1/alerts/<id>/ack?token=<expires>.<recipient>.<hex HMAC>`,
where `expires` is a unix time (default: 7 days after the message), `recipient` the base64url id of the
unit whose head got the message, and the HMAC (key DVC_ALERTS_SIGNING_KEY) covers the alert id, the
recipient and the expiry. Following the link only shows a confirmation page; the page's form POSTs
the token back to acknowledge that one alert on behalf of that recipient, nothing else.

Webhook calls (see delivery.py) carry `X-DVC-Timestamp: <unix seconds>` and
`X-DVC-Signature: sha256=<hex HMAC-SHA256(DVC_WEBHOOK_SECRET, "<timestamp>." + raw body bytes)>`.
A receiver checks both with `webhook_signature_valid` (the README shows the same check standalone)
and refuses a timestamp more than WEBHOOK_TOLERANCE_SECONDS away from its clock: a replay.
"""

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

ACK_TOKEN_MAX_LENGTH = 500  # a base64url unit id of 64 four-byte characters is 342 characters
WEBHOOK_TOLERANCE_SECONDS = 300


class InvalidLink(ValueError):
    """An acknowledgement token that is malformed, wrongly signed or expired."""


@dataclass(frozen=True, slots=True)
class AckGrant:
    """What a valid acknowledgement token allows: this alert, on behalf of this recipient, until then."""

    alert_id: int
    recipient_unit_id: str
    expires_at: datetime


def _ack_digest(key: str, alert_id: int, recipient: str, expires: int) -> str:
    message = f"ack.{alert_id}.{recipient}.{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def ack_token(key: str, alert_id: int, recipient_unit_id: str, expires: int) -> str:
    """Return the token of an alert's acknowledgement link for one recipient, valid until `expires`."""
    recipient = base64.urlsafe_b64encode(recipient_unit_id.encode()).rstrip(b"=").decode()
    return f"{expires}.{recipient}.{_ack_digest(key, alert_id, recipient, expires)}"


def read_ack_token(key: str, alert_id: int, token: str, *, now: datetime) -> AckGrant:
    """Return what the token grants, or raise InvalidLink (never another error, whatever the input)."""
    parts = token.split(".") if token.isascii() and len(token) <= ACK_TOKEN_MAX_LENGTH else []
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 12 or parts[0].startswith("0"):
        raise InvalidLink("liên kết không hợp lệ / malformed link")
    expires_text, recipient, digest = parts
    if not hmac.compare_digest(
        _ack_digest(key, alert_id, recipient, int(expires_text)).encode(), digest.encode()
    ):
        raise InvalidLink("liên kết không hợp lệ / invalid link")
    expires_at = datetime.fromtimestamp(int(expires_text), UTC)
    if expires_at <= now:
        raise InvalidLink("liên kết đã hết hạn / expired link")
    try:
        recipient_unit_id = base64.urlsafe_b64decode(recipient + "=" * (-len(recipient) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:  # signed by us, so only with a leaked key
        raise InvalidLink("liên kết không hợp lệ / invalid link") from exc
    return AckGrant(alert_id, recipient_unit_id, expires_at)


def ack_url(public_url: str, key: str, alert_id: int, recipient_unit_id: str, expires: int) -> str:
    """Return the signed acknowledgement link of an alert for one recipient."""
    token = ack_token(key, alert_id, recipient_unit_id, expires)
    return f"{public_url.rstrip('/')}/api/v1/alerts/{alert_id}/ack?token={token}"


def dashboard_url(grafana_url: str, unit_id: str) -> str:
    """Return the link to a unit's Grafana board."""
    return f"{grafana_url.rstrip('/')}/d/dvc-unit?var-unit={quote(unit_id, safe='')}"


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the X-DVC-Signature header value of a webhook call."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_signature_valid(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    now: float,
    tolerance: float = WEBHOOK_TOLERANCE_SECONDS,
) -> bool:
    """Return True if the headers sign this body and the timestamp is within `tolerance` of `now`."""
    if not timestamp.isascii() or not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    expected = webhook_signature(secret, int(timestamp), body)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
