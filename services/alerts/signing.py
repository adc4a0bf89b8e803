"""HMAC-SHA256 signatures: acknowledgement links and outgoing webhook calls.

Acknowledgement link: `DVC_PUBLIC_URL/api/v1/alerts/<id>/ack?token=<hex HMAC-SHA256(DVC_ALERTS_SIGNING_KEY,
"<id>")>`; anyone holding the link may acknowledge that one alert, nothing else.

Webhook calls (see delivery.py) carry `X-DVC-Timestamp: <unix seconds>` and
`X-DVC-Signature: sha256=<hex HMAC-SHA256(DVC_WEBHOOK_SECRET, "<timestamp>." + raw body bytes)>`.
"""

import hashlib
import hmac
from urllib.parse import quote


def ack_token(key: str, alert_id: int) -> str:
    """Return the token of an alert's acknowledgement link."""
    return hmac.new(key.encode(), str(alert_id).encode(), hashlib.sha256).hexdigest()


def ack_token_valid(key: str, alert_id: int, token: str) -> bool:
    """Return True if `token` signs this alert id (constant-time comparison)."""
    return hmac.compare_digest(ack_token(key, alert_id), token)


def ack_url(public_url: str, key: str, alert_id: int) -> str:
    """Return the signed acknowledgement link of an alert."""
    return f"{public_url.rstrip('/')}/api/v1/alerts/{alert_id}/ack?token={ack_token(key, alert_id)}"


def dashboard_url(grafana_url: str, unit_id: str) -> str:
    """Return the link to a unit's Grafana board."""
    return f"{grafana_url.rstrip('/')}/d/dvc-unit?var-unit={quote(unit_id, safe='')}"


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the X-DVC-Signature header value of a webhook call."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
