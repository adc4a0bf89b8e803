"""Event contract v1.1 (event-contract.md): one frozen model per event type and the parser of raw bytes.

`parse_event` returns either a validated event or a `Rejection` carrying the contract's reason code.
The checks run in the contract's order: decoding, object, `event_type`, then the model's fields in
declaration order (common fields, subject id, the type's own fields); `unknown_unit` is checked by
the consumer against the registry, last.
"""

import zlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, PydanticUndefined

from shared import topics
from shared.kpis import LOCAL_TZ

# v1.1: the local years a timestamp may fall in; sentinels such as 9999-12-31 or 0001-01-01 are bad input.
FIRST_YEAR, LAST_YEAR = 2000, 2099


def parse_timestamp(value: Any, info: ValidationInfo) -> datetime:
    """Parse an ISO 8601 string with an explicit offset, naming the contract's reason on failure.

    Re-reading a stored event (context `{"stored": True}`) skips the v1.1 year range: it was accepted
    when it arrived, possibly under an earlier version of the contract.
    """
    if not isinstance(value, str):
        raise PydanticCustomError("wrong_type", "a timestamp must be a JSON string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("bad_timestamp", "not an ISO 8601 timestamp") from None
    if parsed.utcoffset() is None:  # no tzinfo, or one without an offset
        raise PydanticCustomError("naive_timestamp", "the timestamp has no UTC offset")
    if FIRST_YEAR < parsed.year < LAST_YEAR:
        return parsed  # an offset moves the local date by less than a day: the local year is in range
    year = local_year(parsed)
    if not FIRST_YEAR <= year <= LAST_YEAR and not (info.context or {}).get("stored"):
        raise PydanticCustomError(
            "bad_timestamp",
            "the local (Asia/Ho_Chi_Minh, UTC+7) year {year} is outside the allowed range {first}..{last}",
            {"year": year, "first": FIRST_YEAR, "last": LAST_YEAR},
        )
    return parsed


def local_year(value: datetime) -> int:
    """Return the Asia/Ho_Chi_Minh year of an aware instant (0 or 10000 just beyond Python's range)."""
    try:
        return value.astimezone(LOCAL_TZ).year
    except OverflowError:  # only at the edges of years 1 and 9999
        return value.year + (1 if value.year == datetime.max.year else -1)


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": f"ISO 8601 with an explicit UTC offset; local (UTC+7) year {FIRST_YEAR}..{LAST_YEAR}",
        }
    ),
]
Id64 = Annotated[StrictStr, StringConstraints(min_length=1, max_length=64)]
Id128 = Annotated[StrictStr, StringConstraints(min_length=1, max_length=128)]


class Event(BaseModel):
    """Fields common to every event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Id128
    event_type: str
    occurred_at: Timestamp
    unit_id: Id64
    source: StrictStr | None = None


class CaseEvent(Event):
    """A case-file (hồ sơ TTHC) life-cycle event."""

    case_id: Id128


class CaseReceived(CaseEvent):
    """The unit accepted the case file (tiếp nhận)."""

    event_type: Literal["received"]
    procedure_code: Id128
    channel: Literal["in_person", "online", "postal"]
    service_level: Annotated[StrictInt, Field(ge=1, le=4)]
    due_at: Timestamp | None
    synced_to_national_portal: StrictBool | None = None


class SupplementRequested(CaseEvent):
    """The unit asked the applicant for more papers; the deadline clock stops."""

    event_type: Literal["supplement_requested"]
    reason: StrictStr | None = None


class SupplementReceived(CaseEvent):
    """The applicant supplied the papers; the clock restarts with a new due date."""

    event_type: Literal["supplement_received"]
    due_at: Timestamp


class CaseResolved(CaseEvent):
    """Processing finished (status 9)."""

    event_type: Literal["resolved"]
    outcome: Literal["approved", "denied"]


class ResultReturned(CaseEvent):
    """The result was handed back to the applicant (status 10)."""

    event_type: Literal["returned"]


class CaseRefused(CaseEvent):
    """The unit refused to accept the case file."""

    event_type: Literal["refused"]
    reason: StrictStr | None = None


class CaseWithdrawn(CaseEvent):
    """The applicant withdrew the case file."""

    event_type: Literal["withdrawn"]


class ApologyIssued(CaseEvent):
    """The unit sent the written apology (văn bản xin lỗi) with a new appointment date."""

    event_type: Literal["apology_issued"]
    due_at: Timestamp


class CaseRated(CaseEvent):
    """The applicant rated the handling of the case file."""

    event_type: Literal["rated"]
    rating: Literal["very_satisfied", "satisfied", "dissatisfied"]


class CaseSynced(CaseEvent):
    """The case file was synchronised to the national public-service portal."""

    event_type: Literal["synced"]


class DocumentSent(Event):
    """The unit issued or sent an official document (văn bản)."""

    event_type: Literal["sent"]
    document_id: Id128
    medium: Literal["electronic", "paper", "both"]
    secrecy: Literal["normal", "confidential", "secret", "top_secret"]
    digitally_signed: StrictBool
    recipient_unit_id: Id64 | None = None


class ReportSubmitted(Event):
    """v1.1: the unit submitted one periodic report or statistical return."""

    event_type: Literal["report_submitted"]
    report_id: Id128
    report_code: Id64
    channel: Literal["online", "paper"]
    connected_to_national_system: StrictBool
    due_at: Timestamp | None


class InspectionCompleted(Event):
    """v1.1: the unit (`unit_id`) finished an inspection of another unit."""

    event_type: Literal["inspection_completed"]
    inspection_id: Id128
    inspected_unit_id: Id64
    topic: Literal["administrative_reform", "other"]
    digital: StrictBool


class CellsChanged(BaseModel):
    """Internal (ingest -> metrics): per unit, the local days whose KPI cells a stored batch may have changed.

    Keyed by a bucket of the unit id (`cells_key`): one message per bucket and batch instead of one
    per unit, and a unit's changes always land on the same partition.
    """

    model_config = ConfigDict(frozen=True)

    cells: dict[str, list[date]]
    changed_at: float  # unix time of the database commit, for freshness figures
    first_event_at: float | None = (
        None  # broker timestamp of the batch's oldest record (event-to-count latency)
    )


CHANGE_BUCKETS = 16


def cells_key(unit_id: str) -> bytes:
    """Return the Kafka key of a unit's changes: a stable bucket of its id."""
    return f"cells-{zlib.crc32(unit_id.encode()) % CHANGE_BUCKETS}".encode()


class UnitKpisComputed(BaseModel):
    """Internal (metrics -> alerts): a unit's counts per KPI for one period, after a change."""

    model_config = ConfigDict(frozen=True)

    unit_id: str
    period: str  # "month:2021-03" or "year:2021"
    counts: dict[str, tuple[int, int]]  # kpi id -> (numerator, denominator)
    computed_at: float  # unix time


CASE_EVENT_TYPES: dict[str, type[CaseEvent]] = {
    "received": CaseReceived,
    "supplement_requested": SupplementRequested,
    "supplement_received": SupplementReceived,
    "resolved": CaseResolved,
    "returned": ResultReturned,
    "refused": CaseRefused,
    "withdrawn": CaseWithdrawn,
    "apology_issued": ApologyIssued,
    "rated": CaseRated,
    "synced": CaseSynced,
}
DOCUMENT_EVENT_TYPES: dict[str, type[Event]] = {"sent": DocumentSent}
REPORT_EVENT_TYPES: dict[str, type[Event]] = {"report_submitted": ReportSubmitted}
INSPECTION_EVENT_TYPES: dict[str, type[Event]] = {"inspection_completed": InspectionCompleted}
EVENT_TYPES_BY_TOPIC: dict[str, dict[str, type[CaseEvent]] | dict[str, type[Event]]] = {
    topics.CASE_EVENTS: CASE_EVENT_TYPES,
    topics.DOCUMENT_EVENTS: DOCUMENT_EVENT_TYPES,
    topics.REPORT_EVENTS: REPORT_EVENT_TYPES,
    topics.INSPECTION_EVENTS: INSPECTION_EVENT_TYPES,
}


def contract_json_schema() -> dict[str, Any]:
    """JSON schema of one message of the input topics (for the AsyncAPI document)."""
    models = [
        *CASE_EVENT_TYPES.values(),
        *DOCUMENT_EVENT_TYPES.values(),
        *REPORT_EVENT_TYPES.values(),
        *INSPECTION_EVENT_TYPES.values(),
    ]
    return {"title": "ContractEvent", "oneOf": [model.model_json_schema() for model in models]}


REASON_CODES = (
    "not_json",
    "not_object",
    "unknown_event_type",
    "missing_field",
    "null_field",
    "wrong_type",
    "bad_timestamp",
    "naive_timestamp",
    "bad_enum",
    "bad_length",
    "unknown_unit",
)
# Operational reason (not the contract's): the event failed storage alone while the rest of its batch was stored.
HANDLER_ERROR = "handler_error"
_REASON_BY_ERROR_TYPE = {
    "string_type": "wrong_type",
    "int_type": "wrong_type",
    "bool_type": "wrong_type",
    "greater_than_equal": "bad_enum",
    "less_than_equal": "bad_enum",
    "string_too_short": "bad_length",
    "string_too_long": "bad_length",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is bad input: a contract reason code and a human-readable message."""

    reason: str
    message: str


def parse_event(topic: str, raw: bytes | None) -> Event | Rejection:
    """Validate one Kafka message body of `topic` (unprefixed name) against the contract."""
    body = decode_body(raw)
    return body if isinstance(body, Rejection) else validate_body(topic, body)


def decode_body(raw: bytes | None) -> dict[str, Any] | Rejection:
    """Decode the bytes as one JSON object (NaN and Infinity are not JSON)."""
    try:
        body = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not valid UTF-8 JSON: {exc}")
    if not isinstance(body, dict):
        return Rejection("not_object", f"the JSON value is a {type(body).__name__}, not an object")
    return body


def validate_body(topic: str, body: dict[str, Any]) -> Event | Rejection:
    """Check `event_type` for the topic, then the type's fields in declaration order."""
    event_type = body.get("event_type")
    model = EVENT_TYPES_BY_TOPIC[topic].get(event_type) if isinstance(event_type, str) else None
    if model is None:
        return Rejection("unknown_event_type", f"event_type {event_type!r} is not a type of {topic}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        return reject_first_error(exc)


def reject_first_error(exc: ValidationError) -> Rejection:
    """Map the first failing field (declaration order) to the contract's reason code."""
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in error["loc"])
    value = error.get("input", PydanticUndefined)
    if error["type"] == "missing":
        reason = "missing_field"
    elif value is None:
        reason = "null_field"
    elif error["type"] == "literal_error":
        reason = "bad_enum" if isinstance(value, str) else "wrong_type"
    else:
        reason = _REASON_BY_ERROR_TYPE.get(error["type"], error["type"])
    if reason not in REASON_CODES:
        reason = "wrong_type"
    return Rejection(reason, f"{field}: {error['msg']}")


AlertState = Literal["ok", "at_risk", "below_target", "insufficient_data"]
ALERT_STATES: tuple[str, ...] = get_args(AlertState)


class AlertStateChanged(BaseModel):
    """Public (alerts -> anyone, `dvc.alerts.v1`, keyed by unit): a unit's KPI changed alert state in a period."""

    model_config = ConfigDict(frozen=True)

    event_id: str  # "alert-event-<n>": the same change re-published carries the same id
    unit_id: str
    kpi: str
    period: str  # "month:2021-03" or "year:2021"
    previous_state: AlertState | None
    state: AlertState
    alert_id: int | None  # the alert opened, kept open or resolved by this change
    numerator: int
    denominator: int
    ratio: float | None
    target: float | None
    comparator: str | None  # ">=", ">" or "<="
    failures_allowed: int | None  # failures still allowed this period (negative: over the budget)
    forecast_ratio: float | None  # expected period-end ratio from the pace so far
    p_meet: float | None  # probability of meeting the target at period end
    changed_at: float  # unix time
