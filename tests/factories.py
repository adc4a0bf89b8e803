"""Random-id factories for contract events (JSON-ready dicts) and small registries."""

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from shared.units import Head, Level, Registry, Unit

ICT = timezone(timedelta(hours=7))


def random_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def at(text: str) -> str:
    """Return an ISO timestamp for a local (UTC+7) 'YYYY-MM-DD HH:MM'."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ICT).isoformat()


def case_event(
    event_type: str, case_id: str, unit_id: str, occurred_at: str, **fields: Any
) -> dict[str, Any]:
    return {
        "event_id": random_id("ev"),
        "event_type": event_type,
        "occurred_at": occurred_at,
        "unit_id": unit_id,
        "case_id": case_id,
        "source": "test",
        **fields,
    }


def received(
    case_id: str,
    unit_id: str,
    occurred_at: str,
    *,
    due_at: str | None,
    procedure_code: str = "1.001",
    channel: str = "online",
    service_level: int = 4,
    synced: bool = False,
) -> dict[str, Any]:
    return case_event(
        "received",
        case_id,
        unit_id,
        occurred_at,
        procedure_code=procedure_code,
        channel=channel,
        service_level=service_level,
        due_at=due_at,
        synced_to_national_portal=synced,
    )


def document_sent(
    document_id: str,
    unit_id: str,
    occurred_at: str,
    *,
    medium: str = "electronic",
    secrecy: str = "normal",
    signed: bool = True,
) -> dict[str, Any]:
    return {
        "event_id": random_id("ev"),
        "event_type": "sent",
        "occurred_at": occurred_at,
        "unit_id": unit_id,
        "document_id": document_id,
        "medium": medium,
        "secrecy": secrecy,
        "digitally_signed": signed,
        "recipient_unit_id": None,
    }


def encode(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """Return the (key, value) of a contract message."""
    return str(event["unit_id"]).encode(), orjson.dumps(event)


def small_registry(*commune_ids: str) -> Registry:
    """A province root, one agency, one district and the given communes under it."""
    levels = [
        Level(id="province", name="Cấp tỉnh", name_en="Province"),
        Level(id="district", name="Cấp huyện", name_en="District"),
        Level(id="commune", name="Cấp xã", name_en="Commune"),
    ]

    def unit(unit_id: str, level: str, parent: str | None) -> Unit:
        return Unit(
            id=unit_id,
            name=f"Đơn vị {unit_id}",
            level=level,
            parent=parent,
            head=Head(name=f"Thủ trưởng {unit_id}", email=f"{unit_id}@dvc-monitor.example"),
        )

    units = [
        unit("p", "province", None),
        unit("p.agency", "province", "p"),
        unit("p.district", "district", "p"),
    ]
    units += [unit(cid, "commune", "p.district") for cid in commune_ids]
    return Registry(registry="test", levels=levels, units=units)


def report_submitted(
    report_id: str,
    unit_id: str,
    occurred_at: str,
    *,
    channel: str = "online",
    connected: bool = True,
    due_at: str | None = None,
    report_code: str = "BC-CCHC-Q",
) -> dict[str, Any]:
    return {
        "event_id": random_id("ev"),
        "event_type": "report_submitted",
        "occurred_at": occurred_at,
        "unit_id": unit_id,
        "report_id": report_id,
        "report_code": report_code,
        "channel": channel,
        "connected_to_national_system": connected,
        "due_at": due_at,
    }


def inspection_completed(
    inspection_id: str,
    unit_id: str,
    inspected_unit_id: str,
    occurred_at: str,
    *,
    topic: str = "administrative_reform",
    digital: bool = False,
) -> dict[str, Any]:
    return {
        "event_id": random_id("ev"),
        "event_type": "inspection_completed",
        "occurred_at": occurred_at,
        "unit_id": unit_id,
        "inspection_id": inspection_id,
        "inspected_unit_id": inspected_unit_id,
        "topic": topic,
        "digital": digital,
    }
