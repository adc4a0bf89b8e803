"""The (unit, local day) KPI cells a stored batch may have changed: what ingest tells metrics to recompute."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime

from shared.kpis import LOCAL_TZ

Dirty = dict[str, set[date]]  # unit id -> local days whose cells may have changed


def local_day(value: datetime) -> date:
    """Return the Asia/Ho_Chi_Minh calendar day of an instant."""
    return value.astimezone(LOCAL_TZ).date()


def local_days(instants: Iterable[datetime | None]) -> set[date]:
    """Return the Asia/Ho_Chi_Minh calendar days of instants (None skipped)."""
    return {instant.astimezone(LOCAL_TZ).date() for instant in instants if instant is not None}


def merge_dirty(*parts: Dirty) -> Dirty:
    """Return the union of dirty cells."""
    merged: Dirty = defaultdict(set)
    for part in parts:
        for unit_id, days in part.items():
            merged[unit_id] |= days
    return merged
