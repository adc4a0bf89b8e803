"""One unit's working day: its case files, each with its whole event chain at once, and its documents.

Times are drawn in working seconds (simulator.calendar), so staff actions fall in working hours; only
`synced` (an automatic job) runs around the clock. Events at or after `end` are left out (not yet happened).
"""

import math
import random
from typing import Any

import orjson

from shared.topics import CASE_EVENTS, DOCUMENT_EVENTS
from simulator.calendar import DAY, WORKDAY, WorkCalendar, day_date, iso
from simulator.oversight import OversightDay, build_oversight
from simulator.profiles import Procedure, UnitProfile

CASE_SOURCE = "motcua-sim"
DOCUMENT_SOURCE = "qlvb-sim"
REFUSED, WITHDRAWN, SUPPLEMENT = 0.004, 0.002, 0.06
SYNCED_AT_RECEIPT, SYNCED_LATER, POSTAL = 0.55, 0.9, 0.03
APPROVED, RETURNED, APOLOGY, RATED, VERY_SATISFIED, LATE_DISSATISFIED = 0.97, 0.96, 0.85, 0.85, 0.55, 0.35
SUPPLEMENT_REASONS = (
    "Thiếu bản sao chứng thực giấy tờ tùy thân",
    "Đơn đề nghị chưa đủ chữ ký",
    "Thiếu bản vẽ sơ đồ thửa đất",
    "Giấy xác nhận hết hiệu lực",
)
SECRECY = ((0.97, "normal"), (0.99, "confidential"), (0.998, "secret"), (1.0, "top_secret"))  # cumulative
REFUSAL_REASONS = ("Không thuộc thẩm quyền giải quyết", "Không đủ điều kiện theo quy định")

Built = tuple[int, str, bytes]  # (local seconds, topic, JSON value)


def poisson(rng: random.Random, mean: float) -> int:
    """Draw a Poisson count (normal approximation for large means)."""
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class UnitDay:
    """Build the events of one unit's working day; `out` collects them unordered."""

    def __init__(
        self,
        profile: UnitProfile,
        calendar: WorkCalendar,
        day: int,
        *,
        seed: int,
        id_prefix: str,
        window: tuple[int, int],
        recipients: tuple[str, ...],
        inspects: tuple[str, ...] = (),
    ) -> None:
        self.rng = random.Random(f"{seed}/{profile.unit_id}/{day}")
        # its own stream, so reports and inspections leave the case and document streams of a seed as they were
        self.oversight_rng = random.Random(f"{seed}/{profile.unit_id}/{day}/oversight")
        self.inspects = inspects
        self.profile, self.calendar, self.recipients = profile, calendar, recipients
        self.start, self.end = window
        self.day_work = calendar.work_at(day * DAY)
        self.stamp = f"{id_prefix}{profile.unit_id}-{day_date(day):%y%m%d}-"
        self.out: list[Built] = []

    def build(self, scale: float) -> list[Built]:
        """Build the day's case files and documents."""
        for seq in range(1, poisson(self.rng, self.profile.cases_per_day * scale) + 1):
            self.case(f"{self.stamp}{seq:04d}")
        for seq in range(1, poisson(self.rng, self.profile.documents_per_day * scale) + 1):
            self.document(f"{self.stamp}VB{seq:04d}")
        oversight = OversightDay(
            self.profile.unit_id,
            self.stamp,
            self.day_work,
            (self.start, self.end),
            online_share=min(1.0, self.profile.electronic_share - 0.05),
            inspects=self.inspects,
        )
        self.out += build_oversight(oversight, self.oversight_rng, self.at)
        return self.out

    def emit(self, local: int, case_id: str, short: str, event_type: str, **fields: Any) -> None:
        """Add a case event unless it has not happened by the end of the simulation."""
        if local < self.end:
            body = {
                "event_id": f"{case_id}:{short}",
                "event_type": event_type,
                "occurred_at": iso(local),
                "unit_id": self.profile.unit_id,
                "source": CASE_SOURCE,
                "case_id": case_id,
                **fields,
            }
            self.out.append((local, CASE_EVENTS, orjson.dumps(body)))

    def at(self, work: int) -> int:
        """Return the local instant of a working-seconds count."""
        return self.calendar.local_at(work)

    def case(self, case_id: str) -> None:
        """Receive a case file and play its life cycle."""
        rng = self.rng
        received = self.day_work + int(rng.random() * WORKDAY)
        local = self.at(received)
        if local < self.start:
            return
        procedure = self.profile.pick_procedure(rng)
        due = None if procedure.duration_days is None else received + procedure.duration_days * WORKDAY
        synced = rng.random() < SYNCED_AT_RECEIPT
        self.emit(
            local,
            case_id,
            "rcv",
            "received",
            procedure_code=procedure.code,
            channel=self.channel(procedure),
            service_level=procedure.service_level,
            due_at=None if due is None else iso(self.calendar.local_at(due, end=True)),
            synced_to_national_portal=synced,
        )
        if not synced and rng.random() < SYNCED_LATER:
            self.emit(local + rng.randrange(300, 36 * 3600), case_id, "syn", "synced")
        ending = rng.random()
        if ending < REFUSED:
            self.emit(
                self.at(received + rng.randrange(60, 7200)),
                case_id,
                "ref",
                "refused",
                reason=rng.choice(REFUSAL_REASONS),
            )
        elif ending < REFUSED + WITHDRAWN:
            self.emit(self.at(received + rng.randrange(600, 3 * WORKDAY)), case_id, "wd", "withdrawn")
        else:
            self.process(case_id, received, due, procedure)

    def channel(self, procedure: Procedure) -> str:
        """Draw the intake channel: online only for service levels 3 and 4."""
        draw = self.rng.random()
        if draw < POSTAL:
            return "postal"
        online = procedure.service_level >= 3 and draw < POSTAL + self.profile.role.online_share
        return "online" if online else "in_person"

    def process(self, case_id: str, received: int, due: int | None, procedure: Procedure) -> None:
        """Maybe ask for a supplement, then resolve early, on time or (by the unit's habit) late."""
        rng = self.rng
        span = (procedure.duration_days or rng.randint(1, 10)) * WORKDAY
        done = received + int(span * (0.25 + 0.75 * rng.random()))
        late, last = False, received
        if due is not None:
            done = min(done, due - 1)
            if rng.random() < SUPPLEMENT:
                asked = received + 60 + int((done - received) * 0.5 * rng.random())
                last = asked + int(WORKDAY * (0.5 + 7.5 * rng.random()))
                due, done = due + last - asked, done + last - asked  # the clock stopped meanwhile
                self.emit(
                    self.at(asked),
                    case_id,
                    "sreq",
                    "supplement_requested",
                    reason=rng.choice(SUPPLEMENT_REASONS),
                )
                self.emit(
                    self.at(last),
                    case_id,
                    "srcv",
                    "supplement_received",
                    due_at=iso(self.calendar.local_at(due, end=True)),
                )
            late = rng.random() < self.profile.late_rate
            if late:
                done = due + 60 + int(rng.random() * 3 * WORKDAY)
        outcome = "approved" if rng.random() < APPROVED else "denied"
        self.emit(self.at(done), case_id, "res", "resolved", outcome=outcome)
        if late and due is not None and rng.random() < APOLOGY:
            apologised = max(last + 60, due - int(rng.random() * WORKDAY / 2))
            appointment = max(done, apologised) + 60 + int(rng.random() * WORKDAY)
            self.emit(
                self.at(apologised),
                case_id,
                "apo",
                "apology_issued",
                due_at=iso(self.calendar.local_at(appointment, end=True)),
            )
        self.hand_over(case_id, done, late)

    def hand_over(self, case_id: str, done: int, late: bool) -> None:
        """Return the result to the applicant, who usually rates the handling."""
        rng = self.rng
        after = done
        if rng.random() < RETURNED:
            after = done + 60 + int(rng.random() ** 2 * 2 * WORKDAY)
            self.emit(self.at(after), case_id, "ret", "returned")
        if rng.random() < RATED:
            self.emit(
                self.at(after + rng.randrange(60, WORKDAY)), case_id, "rat", "rated", rating=self.rating(late)
            )

    def rating(self, late: bool) -> str:
        """Draw the applicant's rating: late cases disappoint far more often."""
        if self.rng.random() < (LATE_DISSATISFIED if late else self.profile.dissatisfied_rate):
            return "dissatisfied"
        return "very_satisfied" if self.rng.random() < VERY_SATISFIED else "satisfied"

    def document(self, document_id: str) -> None:
        """Send an official document: mostly normal secrecy, electronic as the unit's habit allows."""
        rng = self.rng
        local = self.at(self.day_work + int(rng.random() * WORKDAY))
        if not self.start <= local < self.end:
            return
        draw = rng.random()
        secrecy = next(name for limit, name in SECRECY if draw < limit)
        medium = self.medium(secrecy)
        signed = medium == "electronic" and rng.random() < 0.93 or medium == "both" and rng.random() < 0.5
        body = {
            "event_id": f"{document_id}:sent",
            "event_type": "sent",
            "occurred_at": iso(local),
            "unit_id": self.profile.unit_id,
            "source": DOCUMENT_SOURCE,
            "document_id": document_id,
            "medium": medium,
            "secrecy": secrecy,
            "digitally_signed": signed,
        }
        if rng.random() < 0.7:
            body["recipient_unit_id"] = rng.choice(self.recipients)
        self.out.append((local, DOCUMENT_EVENTS, orjson.dumps(body)))

    def medium(self, secrecy: str) -> str:
        """Draw the medium: state secrets stay off the document system; others electronic by habit."""
        draw = self.rng.random()
        if secrecy != "normal":
            return "paper" if draw < 0.9 else "both"
        share = self.profile.electronic_share
        return "electronic" if draw < share else "both" if draw < share + (1 - share) * 0.6 else "paper"
