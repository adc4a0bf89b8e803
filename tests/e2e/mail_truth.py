"""Judge the case ids a notification names against the simulator's ground truth, at the mail's Date.

A digest names cases in three sections: open and overdue ("Hồ sơ đang quá hạn"), closed late without an
apology this month ("Hồ sơ đã quá hạn"), and open, running cases not yet due ("Sắp đến hạn"). A case id
outside any section (an alert page) is judged as open and overdue. A case id the truth does not know is
false.
"""

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

from tests.e2e.truth import month_of, parse

TERMINAL = ("resolved", "refused", "withdrawn")
Cases = dict[str, list[dict[str, Any]]]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def cases_of(truth: Iterable[dict[str, Any]]) -> Cases:
    """The good case events of a ground truth, per case id."""
    by_case: Cases = defaultdict(list)
    for line in truth:
        event = line.get("event")
        if line["expected_reason"] is None and event is not None and "case_id" in event:
            by_case[event["case_id"]].append(event)
    return by_case


def case_state(events: list[dict[str, Any]], at: datetime) -> tuple[bool, bool, bool, bool]:
    """(open and overdue, closed late, apologised, open and running and not yet due) for one case from
    its events up to `at`."""
    known = sorted((e for e in events if parse(e["occurred_at"]) <= at), key=lambda e: e["occurred_at"])
    receipts = [e for e in known if e["event_type"] == "received"]
    if not receipts:
        return False, False, False, False
    due = parse(receipts[0]["due_at"]) if receipts[0].get("due_at") else None
    paused, late = False, False
    for event in known[known.index(receipts[0]) + 1 :]:
        kind, when = event["event_type"], parse(event["occurred_at"])
        if kind == "supplement_requested":
            paused = True
        elif kind == "supplement_received":
            paused = False
            due = parse(event["due_at"]) if event.get("due_at") else due
        elif kind in TERMINAL:
            late = due is not None and not paused and when > due
            apologised = any(e["event_type"] == "apology_issued" for e in known)
            return False, late, apologised, False
    apologised = any(e["event_type"] == "apology_issued" for e in known)
    if paused or due is None:
        return False, False, apologised, False
    return at > due, False, apologised, at <= due


def mentions(text: str, pattern: str) -> tuple[set[str], set[str], set[str]]:
    """Case ids (matching the regex `pattern`) of the digest's open-overdue section, its closed-late
    section and its due-soon section."""
    sections: dict[str, set[str]] = defaultdict(set)
    current = ""
    for line in text.splitlines():
        if line.startswith("Hồ sơ đang quá hạn"):
            current = "open"
        elif line.startswith("Hồ sơ đã quá hạn"):
            current = "closed"
        elif line.startswith("Sắp đến hạn"):
            current = "due"
        for case_id in re.findall(pattern, line):
            sections[current or "other"].add(case_id.rstrip("."))
    return sections["open"] | sections["other"], sections["closed"], sections["due"]


@dataclass
class Judged:
    """Case mentions of some mails, per section, and the false ones (subject, case id, Date)."""

    named: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("open", "closed", "due"), 0))
    false: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.named.values())


def judge(messages: Iterable[EmailMessage], by_case: Cases, pattern: str) -> Judged:
    """Judge every case id the messages name against the truth at each message's Date."""
    judged = Judged()
    for message in messages:
        sent = parsedate_to_datetime(str(message["Date"]))
        subject = str(message["Subject"])[:60]
        open_ids, closed_ids, due_ids = mentions(text_of(message), pattern)
        for section, ids in (("open", open_ids), ("closed", closed_ids), ("due", due_ids)):
            judged.named[section] += len(ids)
            judged.false += [
                (subject, case_id, sent.isoformat())
                for case_id in sorted(ids)
                if not true_mention(section, by_case.get(case_id, []), sent)
            ]
    return judged


def true_mention(section: str, events: list[dict[str, Any]], sent: datetime) -> bool:
    """Whether a case named in a section is what the section says at `sent`."""
    overdue_open, late, apologised, running = case_state(events, sent)
    if section == "due":  # warned before its deadline: open, running and not yet due
        return running
    if section == "open":
        return overdue_open
    this_month = any(month_of(parse(e["occurred_at"])) == month_of(sent) for e in events)
    return late and not apologised and this_month
