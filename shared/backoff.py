"""Retry loops that back off: capped exponential delays with jitter, a few log lines per outage, metrics.

Every loop that retries after a failure (a consumer's batch, the deadline sweeper, the alerts timer)
waits through a `Retrying`: it never runs faster than its backoff, it logs once when the failures
start, at most every `log_every` seconds while they last and once when they end, and it exports
`dvc_retry_failures_total{loop, kind}` and `dvc_retry_waiting{loop}` (1 while the loop waits: the
service is not ready).
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from shared.db import storage_failure_kind

FAILURES = Counter(
    "dvc_retry_failures_total", "Failed attempts of a retrying loop, by kind of error.", ["loop", "kind"]
)
WAITING = Gauge(
    "dvc_retry_waiting", "1 while a loop waits out failures (the service is not ready).", ["loop"]
)


@dataclass(slots=True)
class Backoff:
    """Capped exponential delays with jitter: step n waits between half and all of min(cap, base * 2**n)."""

    base: float = 0.5
    cap: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        """Return the next delay and move one step up."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the first step."""
        self.attempt = 0


def infrastructure_failure_kind(exc: BaseException) -> str | None:
    """Return the kind of a database or broker failure (wait and retry), or None for any other error."""
    return storage_failure_kind(exc) or ("kafka" if isinstance(exc, KafkaError) else None)


def failure_kind(exc: BaseException) -> str:
    """Return a metric label for a failure: an infrastructure kind, the exception's own `failure_kind`,
    or "other"."""
    return infrastructure_failure_kind(exc) or str(getattr(exc, "failure_kind", "other"))


@dataclass(slots=True)
class Retrying:
    """The failure state of one retrying loop."""

    loop: str
    logger: logging.Logger
    backoff: Backoff = field(default_factory=Backoff)
    log_every: float = 20.0
    failures: int = 0
    failing_since: float | None = None
    logged_at: float = 0.0

    def __post_init__(self) -> None:
        WAITING.labels(self.loop).set(0)

    @property
    def waiting(self) -> bool:
        """True from the first failure until the next success."""
        return self.failing_since is not None

    def failed(self, exc: BaseException) -> float:
        """Count a failure, log it if it is due, and return how long to wait before the next attempt."""
        kind = failure_kind(exc)
        FAILURES.labels(self.loop, kind).inc()
        now = time.monotonic()
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = self.logged_at = now
            WAITING.labels(self.loop).set(1)
            self.logger.warning(
                "%s failing (%s), retrying with backoff up to %.0fs: %r",
                self.loop,
                kind,
                self.backoff.cap,
                exc,
                exc_info=kind == "other",  # an unexpected error: its traceback, once per outage
            )
        elif now - self.logged_at >= self.log_every:
            self.logged_at = now
            self.logger.warning(
                "%s still failing (%s) after %d attempts in %.0fs: %r",
                self.loop,
                kind,
                self.failures,
                now - self.failing_since,
                exc,
            )
        return self.backoff.next_delay()

    async def wait_after(self, exc: BaseException) -> None:
        """Count and log a failure, then sleep through the next backoff step."""
        await asyncio.sleep(self.failed(exc))

    def succeeded(self) -> None:
        """End an outage (one log line) and reset the backoff."""
        if self.failing_since is not None:
            self.logger.warning(
                "%s recovered after %d failed attempts in %.0fs",
                self.loop,
                self.failures,
                time.monotonic() - self.failing_since,
            )
            WAITING.labels(self.loop).set(0)
        self.failing_since = None
        self.failures = 0
        self.backoff.reset()


async def run_forever(step: Callable[[], Awaitable[object]], *, every: float, retrying: Retrying) -> None:
    """Run `step` every `every` seconds; after a failure, wait out the backoff instead, never less."""
    while True:
        try:
            await step()
        except Exception as exc:
            await retrying.wait_after(exc)
            continue
        retrying.succeeded()
        await asyncio.sleep(every)


def periodic(
    step: Callable[[asyncpg.Pool], Awaitable[object]], *, every: float, retrying: Retrying
) -> Callable[[asyncpg.Pool], Coroutine[Any, Any, None]]:
    """Return a service's background task: `step(pool)` run forever (`run_forever`)."""

    async def run(pool: asyncpg.Pool) -> None:
        await run_forever(partial(step, pool), every=every, retrying=retrying)

    return run
