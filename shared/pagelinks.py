"""Signed, expiring links to a unit's page (DVC_PAGES_SIGNING_KEY): signed by alerts, read by metrics.

A message to a unit head links to `<DVC_PAGES_URL>/pages/units/<unit>?t=<token>`, where the token is
`<expires>.<unit>.<recipient>.<hex HMAC-SHA256>` (unit ids base64url): it lets the holder see that one
unit's page until it expires, and tells the alerts service on whose behalf an acknowledgement
started from the page is made. The key is shared by the two services only.
"""

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

# Two base64url unit ids of up to 64 characters of 4 UTF-8 bytes each (342 characters apiece), and more.
MAX_TOKEN_LENGTH = 800


class InvalidPageLink(ValueError):
    """A page token that is malformed, wrongly signed or expired."""


@dataclass(frozen=True, slots=True)
class PageGrant:
    """What a valid page token allows: this unit's page, for this recipient, until then."""

    unit_id: str
    recipient_unit_id: str
    expires: int


def _encode(unit_id: str) -> str:
    return base64.urlsafe_b64encode(unit_id.encode()).rstrip(b"=").decode()


def _decode(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidPageLink("liên kết không hợp lệ / invalid link") from exc


def _digest(key: str, unit: str, recipient: str, expires: int) -> str:
    message = f"page.{unit}.{recipient}.{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def page_token(key: str, unit_id: str, recipient_unit_id: str, expires: int) -> str:
    """Return the token of a unit's page for one recipient, valid until `expires` (unix time)."""
    unit, recipient = _encode(unit_id), _encode(recipient_unit_id)
    return f"{expires}.{unit}.{recipient}.{_digest(key, unit, recipient, expires)}"


def read_page_token(key: str, token: str, *, now: datetime) -> PageGrant:
    """Return what the token grants, or raise InvalidPageLink (never another error, whatever the input)."""
    parts = token.split(".") if token.isascii() and len(token) <= MAX_TOKEN_LENGTH else []
    if len(parts) != 4 or not parts[0].isdigit() or len(parts[0]) > 12 or parts[0].startswith("0"):
        raise InvalidPageLink("liên kết không hợp lệ / malformed link")
    expires_text, unit, recipient, digest = parts
    expected = _digest(key, unit, recipient, int(expires_text))
    if not hmac.compare_digest(expected.encode(), digest.encode()):
        raise InvalidPageLink("liên kết không hợp lệ / invalid link")
    if int(expires_text) <= now.timestamp():
        raise InvalidPageLink("liên kết đã hết hạn / expired link")
    return PageGrant(_decode(unit), _decode(recipient), int(expires_text))


def unit_page_url(pages_url: str, unit_id: str, token: str | None = None) -> str:
    """Return the address of a unit's page, with its token when given."""
    url = f"{pages_url.rstrip('/')}/pages/units/{quote(unit_id, safe='')}"
    return f"{url}?t={token}" if token else url
