"""Bad input: turn a good event body into a message that the contract rejects with one chosen reason code.

Each mutation breaks exactly one thing, so the contract's order of checks yields the intended reason
(tests/unit/test_simulator.py proves it with shared.events.parse_event and the registry).
"""

import random
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from shared.events import REASON_CODES

ID_LIMITS = {
    "event_id": 128,
    "unit_id": 64,
    "case_id": 128,
    "document_id": 128,
    "procedure_code": 128,
    "recipient_unit_id": 64,
    "report_id": 128,
    "report_code": 64,
    "inspection_id": 128,
    "inspected_unit_id": 64,
}
TIMESTAMPS = ("occurred_at", "due_at")
BAD_ENUMS: dict[str, tuple[object, ...]] = {
    "channel": ("fax", "Online", "truc_tuyen"),
    "service_level": (0, 5, 42),
    "outcome": ("pending", "ok"),
    "rating": ("neutral", "5 sao"),
    "medium": ("fax", "email"),
    "secrecy": ("mật", "internal"),
    "topic": ("cchc", "Administrative_reform", "thanh_tra"),
}
OPTIONAL = frozenset({"source", "reason", "synced_to_national_portal", "recipient_unit_id"})
NULLABLE = {("received", "due_at"), ("report_submitted", "due_at")}
BAD_TIMESTAMPS = ("2021-02-30T09:00:00+07:00", "04/03/2021 09:15", "hôm qua", "2021-03-04T25:00:00+07:00", "")
Body = dict[str, Any]


def applicable_reasons(body: Body) -> tuple[str, ...]:
    """Return the reason codes this body can be turned into (bad_enum needs an enum field)."""
    return tuple(
        reason for reason in REASON_CODES if reason != "bad_enum" or any(name in body for name in BAD_ENUMS)
    )


class Breaker:
    """Break good event bodies, one reason code at a time; one method per reason code."""

    def __init__(self, rng: random.Random, unit_ids: frozenset[str]) -> None:
        self.rng, self.unit_ids = rng, unit_ids

    def bad_message(self, body: Body, reason: str) -> bytes:
        """Return the bytes of a copy of `body` broken so that it is rejected with `reason`."""
        if reason not in REASON_CODES:
            raise ValueError(f"not a reason code of the contract: {reason}")
        copy = {
            **body,
            "event_id": f"{body['event_id']}~bad",
        }  # a rejected message claims no id; keep them apart
        mutate: Callable[[Body], bytes] = getattr(self, reason)
        return mutate(copy)

    def _pick(self, body: Body, names: Iterable[str]) -> str:
        return self.rng.choice(sorted(name for name in names if body.get(name) is not None))

    def not_json(self, body: Body) -> bytes:
        raw = orjson.dumps(body)
        variants = (
            raw[: len(raw) // 2],
            b'{"score":NaN,' + raw[1:],
            b"\xff" + raw,
            b"",
            repr(body).encode(),
        )
        return self.rng.choice(variants)

    def not_object(self, body: Body) -> bytes:
        return self.rng.choice(
            (orjson.dumps([body]), orjson.dumps(orjson.dumps(body).decode()), b"42", b"null")
        )

    def unknown_event_type(self, body: Body) -> bytes:
        other = "sent" if "case_id" in body else "received"  # a type of the other topic
        variant = self.rng.randrange(4)
        if variant == 0:
            del body["event_type"]
        else:
            body["event_type"] = ("closed", str(body["event_type"]).upper(), other)[variant - 1]
        return orjson.dumps(body)

    def missing_field(self, body: Body) -> bytes:
        del body[self.rng.choice(sorted(set(body) - OPTIONAL - {"event_type"}))]
        return orjson.dumps(body)

    def null_field(self, body: Body) -> bytes:
        names = {
            name
            for name in set(body) - OPTIONAL - {"event_type"}
            if (body["event_type"], name) not in NULLABLE
        }
        body[self._pick(body, names)] = None
        return orjson.dumps(body)

    def wrong_type(self, body: Body) -> bytes:
        name = self._pick(body, set(body) - {"event_type"})
        value = body[name]
        if isinstance(value, bool):
            body[name] = self.rng.choice(("true", 1, "có"))
        elif isinstance(value, int):
            body[name] = self.rng.choice((str(value), float(value), True))
        else:  # strings: ids, enums and timestamps alike
            body[name] = self.rng.choice((1614824100, 12345, ["x"], {"value": value}))
        return orjson.dumps(body)

    def bad_timestamp(self, body: Body) -> bytes:
        body[self._pick(body, TIMESTAMPS)] = self.rng.choice(BAD_TIMESTAMPS)
        return orjson.dumps(body)

    def naive_timestamp(self, body: Body) -> bytes:
        name = self._pick(body, TIMESTAMPS)
        body[name] = str(body[name]).removesuffix("+07:00")
        return orjson.dumps(body)

    def bad_enum(self, body: Body) -> bytes:
        name = self._pick(body, BAD_ENUMS)
        body[name] = self.rng.choice(BAD_ENUMS[name])
        return orjson.dumps(body)

    def bad_length(self, body: Body) -> bytes:
        name = self._pick(body, ID_LIMITS)
        too_long = self.rng.choice("xđ") * (ID_LIMITS[name] + 1 + self.rng.randrange(30))
        body[name] = "" if self.rng.random() < 0.4 else too_long
        return orjson.dumps(body)

    def unknown_unit(self, body: Body) -> bytes:
        unit_id = f"khong-ton-tai.xa-{self.rng.randrange(10_000)}"
        while unit_id in self.unit_ids:
            unit_id += "x"
        field = "inspected_unit_id" if "inspected_unit_id" in body and self.rng.random() < 0.5 else "unit_id"
        body[field] = unit_id
        return orjson.dumps(body)


assert all(callable(getattr(Breaker, reason, None)) for reason in REASON_CODES), (
    "a reason code has no mutation"
)
