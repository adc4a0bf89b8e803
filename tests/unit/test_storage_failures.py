"""Which errors mean "wait for the database" and which may be one event's fault; backoff bounds."""

import asyncpg
import pytest

from shared.backoff import Backoff, failure_kind
from shared.consuming import UnprovenFailure, process_isolating
from shared.db import storage_failure_kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (asyncpg.DiskFullError("disk full"), "disk_full"),
        (asyncpg.ReadOnlySQLTransactionError("read-only"), "read_only"),
        (asyncpg.InsufficientPrivilegeError("denied"), "permission"),
        (asyncpg.OutOfMemoryError("oom"), "out_of_memory"),
        (asyncpg.SerializationError("serialize"), "serialization"),
        (asyncpg.DeadlockDetectedError("deadlock"), "deadlock"),
        (asyncpg.AdminShutdownError("shutdown"), "shutdown"),
        (asyncpg.CannotConnectNowError("starting"), "starting"),
        (asyncpg.TooManyConnectionsError("too many"), "too_many_connections"),
        (asyncpg.ConnectionDoesNotExistError("gone"), "connection"),
        (asyncpg.PostgresIOError("i/o error"), "system"),
        (asyncpg.InterfaceError("connection is closed"), "client"),
        (ConnectionRefusedError(111, "refused"), "connection"),
        (TimeoutError(), "timeout"),
    ],
)
def test_infrastructure_errors_are_waited_out(error: BaseException, kind: str) -> None:
    assert storage_failure_kind(error) == kind


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UntranslatableCharacterError("NUL byte"),
        asyncpg.NumericValueOutOfRangeError("out of range"),
        asyncpg.UniqueViolationError("duplicate"),
        asyncpg.CheckViolationError("check"),
        asyncpg.exceptions._base.DataError("value out of int64 range"),
        ValueError("bad period"),
    ],
)
def test_data_errors_may_be_pinned_on_one_event(error: BaseException) -> None:
    assert storage_failure_kind(error) is None
    assert failure_kind(error) == "other"


def test_backoff_grows_to_its_cap_and_never_waits_less_than_half_a_step() -> None:
    backoff = Backoff(base=0.5, cap=10.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(5.0 <= delay <= 10.0 for delay in delays[6:])
    backoff.reset()
    assert backoff.next_delay() <= 0.5


async def test_only_an_item_that_fails_alone_while_others_succeed_is_isolated() -> None:
    async def store(items: object) -> int:
        if 3 in items:  # type: ignore[operator]
            raise ValueError("poison")
        return len(items)  # type: ignore[arg-type]

    outcome = await process_isolating(list(range(8)), store)
    assert [item for item, _ in outcome.failed] == [3]
    assert sum(outcome.results) == 7


async def test_a_batch_whose_every_item_fails_rejects_none() -> None:
    async def store(items: object) -> int:
        raise ValueError("a missing table, not the data")

    with pytest.raises(UnprovenFailure):
        await process_isolating(list(range(4)), store)


async def test_an_infrastructure_error_stops_the_bisection_at_once() -> None:
    calls = 0

    async def store(items: object) -> int:
        nonlocal calls
        calls += 1
        raise asyncpg.DiskFullError("disk full")

    with pytest.raises(asyncpg.DiskFullError):
        await process_isolating(list(range(4)), store)
    assert calls == 1
