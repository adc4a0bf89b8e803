"""SQL of ingest: idempotent bulk writes of raw events, case state and documents."""

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import asyncpg
import orjson

from services.ingest.cases import STATE_FIELDS, CaseState, CaseWrite, JsonObject, state_values

CASE_COLUMNS = [*STATE_FIELDS, "history"]
EVENT_COLUMNS = [
    "event_id",
    "topic",
    "event_type",
    "unit_id",
    "subject_id",
    "occurred_at",
    "payload",
    "kafka_partition",
    "kafka_offset",
]
DOCUMENT_COLUMNS = [
    "document_id",
    "unit_id",
    "sent_at",
    "medium",
    "secrecy",
    "digitally_signed",
    "recipient_unit_id",
]


async def fetch_unit_ids(connection: asyncpg.Connection) -> frozenset[str]:
    """Return the ids of the registry's units."""
    return frozenset(row["unit_id"] for row in await connection.fetch("SELECT unit_id FROM units"))


async def ensure_event_partitions(connection: asyncpg.Connection, *, months: Iterable[date]) -> None:
    """Create the monthly partitions of `events` that are missing."""
    await connection.execute("SELECT ensure_event_partition(m) FROM unnest($1::date[]) AS m", list(months))


async def claim_event_ids(connection: asyncpg.Connection, *, event_ids: Sequence[str]) -> set[str]:
    """Claim event ids; return those not seen before (the others are duplicates)."""
    rows = await connection.fetch(
        """
        INSERT INTO event_ids (event_id) SELECT unnest($1::text[])
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id
        """,
        event_ids,
    )
    return {row["event_id"] for row in rows}


async def insert_events(connection: asyncpg.Connection, *, records: Sequence[tuple[Any, ...]]) -> None:
    """COPY new raw events (already claimed, in arrival order) into the partitioned store."""
    await connection.copy_records_to_table("events", records=records, columns=EVENT_COLUMNS)


async def fetch_case_states(
    connection: asyncpg.Connection, *, case_ids: Sequence[str]
) -> dict[str, CaseState]:
    """Return the stored state of each known case (without its history)."""
    rows = await connection.fetch(
        f"SELECT {', '.join(STATE_FIELDS)} FROM cases WHERE case_id = ANY($1::text[])", case_ids
    )
    states = {}
    for row in rows:
        state = CaseState(*row)
        state.overdue_at = list(state.overdue_at)
        states[state.case_id] = state
    return states


async def fetch_case_histories(
    connection: asyncpg.Connection, *, case_ids: Sequence[str]
) -> dict[str, list[JsonObject]]:
    """Return the stored event history of each known case."""
    rows = await connection.fetch(
        "SELECT case_id, history FROM cases WHERE case_id = ANY($1::text[])", case_ids
    )
    return {row["case_id"]: row["history"] for row in rows}


async def upsert_cases(connection: asyncpg.Connection, *, writes: Sequence[CaseWrite]) -> None:
    """Write case states: `append` adds the events to the stored history, otherwise `history` replaces it. COPY into a session temp table, then two set-based upserts."""
    await connection.execute(
        "CREATE TEMP TABLE IF NOT EXISTS cases_incoming "
        "(LIKE cases INCLUDING DEFAULTS, append_history boolean NOT NULL) ON COMMIT DELETE ROWS"
    )
    await connection.copy_records_to_table(
        "cases_incoming",
        records=[(*state_values(write.state), jsonb_array(write.history), write.append) for write in writes],
        columns=[*CASE_COLUMNS, "append_history"],
    )
    assignments = ", ".join(f"{column} = EXCLUDED.{column}" for column in STATE_FIELDS[1:])
    for append, history in ((True, "cases.history || EXCLUDED.history"), (False, "EXCLUDED.history")):
        await connection.execute(
            f"""
            INSERT INTO cases ({", ".join(CASE_COLUMNS)})
            SELECT {", ".join(CASE_COLUMNS)} FROM cases_incoming WHERE append_history = $1
            ON CONFLICT (case_id) DO UPDATE SET {assignments}, history = {history}, updated_at = now()
            """,
            append,
        )


def jsonb_array(items: list[JsonObject]) -> list[dict[str, Any] | orjson.Fragment]:
    """Return JSON objects for the jsonb encoder: raw bytes pass through as they are."""
    return [orjson.Fragment(item) if isinstance(item, bytes) else item for item in items]


async def fetch_documents(
    connection: asyncpg.Connection, *, document_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """Return the stored rows of the given documents (their unit and send time)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT document_id, unit_id, sent_at FROM documents WHERE document_id = ANY($1::text[])",
        document_ids,
    )
    return rows


async def upsert_documents(connection: asyncpg.Connection, *, records: Sequence[tuple[Any, ...]]) -> None:
    """Keep each document's earliest `sent` event (by occurred_at; ties: the stored one).

    `records` holds at most one row per document_id (ON CONFLICT cannot touch a row twice).
    """
    columns: list[tuple[Any, ...]] = (
        list(zip(*records, strict=True)) if records else [() for _ in DOCUMENT_COLUMNS]
    )
    await connection.execute(
        f"""
        INSERT INTO documents ({", ".join(DOCUMENT_COLUMNS)})
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                             $6::boolean[], $7::text[])
        ON CONFLICT (document_id) DO UPDATE SET
            unit_id = EXCLUDED.unit_id, sent_at = EXCLUDED.sent_at, medium = EXCLUDED.medium,
            secrecy = EXCLUDED.secrecy, digitally_signed = EXCLUDED.digitally_signed,
            recipient_unit_id = EXCLUDED.recipient_unit_id
        WHERE EXCLUDED.sent_at < documents.sent_at
        """,
        *[list(column) for column in columns],
    )


async def store_watermarks(connection: asyncpg.Connection, *, marks: Sequence[tuple[Any, ...]]) -> None:
    """Upsert (topic, partition, next_offset, complete_until) per input partition; a mark never replaces
    one that vouches for a later offset (a lag measurement older than a stored batch)."""
    await connection.executemany(
        """INSERT INTO input_watermarks AS w (topic, partition, next_offset, complete_until)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (topic, partition) DO UPDATE
           SET next_offset = EXCLUDED.next_offset, complete_until = EXCLUDED.complete_until, updated_at = now()
           WHERE EXCLUDED.next_offset >= w.next_offset""",
        marks,
    )


REPORT_COLUMNS = [
    "report_id",
    "event_id",
    "unit_id",
    "submitted_at",
    "report_code",
    "channel",
    "connected_to_national_system",
    "due_at",
]
INSPECTION_COLUMNS = [
    "inspection_id",
    "event_id",
    "unit_id",
    "inspected_unit_id",
    "completed_at",
    "topic",
    "digital",
]


async def fetch_reports(connection: asyncpg.Connection, *, report_ids: Sequence[str]) -> list[asyncpg.Record]:
    """Return the stored unit and submission time of the given reports."""
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT report_id, unit_id, submitted_at FROM reports WHERE report_id = ANY($1::text[])", report_ids
    )
    return rows


async def upsert_reports(connection: asyncpg.Connection, *, records: Sequence[tuple[Any, ...]]) -> None:
    """Keep each report's first event: earliest occurred_at, ties to the lowest event_id (code points).

    `records` holds at most one row per report_id (ON CONFLICT cannot touch a row twice).
    """
    await connection.execute(
        f"""
        INSERT INTO reports ({", ".join(REPORT_COLUMNS)})
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                             $7::boolean[], $8::timestamptz[])
        ON CONFLICT (report_id) DO UPDATE SET
            event_id = EXCLUDED.event_id, unit_id = EXCLUDED.unit_id, submitted_at = EXCLUDED.submitted_at,
            report_code = EXCLUDED.report_code, channel = EXCLUDED.channel,
            connected_to_national_system = EXCLUDED.connected_to_national_system, due_at = EXCLUDED.due_at
        WHERE (EXCLUDED.submitted_at, EXCLUDED.event_id COLLATE "C")
            < (reports.submitted_at, reports.event_id COLLATE "C")
        """,
        *columns_of(records, len(REPORT_COLUMNS)),
    )


async def fetch_inspections(
    connection: asyncpg.Connection, *, inspection_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """Return the stored units and completion time of the given inspections."""
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT inspection_id, unit_id, inspected_unit_id, completed_at FROM inspections "
        "WHERE inspection_id = ANY($1::text[])",
        inspection_ids,
    )
    return rows


async def upsert_inspections(connection: asyncpg.Connection, *, records: Sequence[tuple[Any, ...]]) -> None:
    """Keep each inspection's first event: earliest occurred_at, ties to the lowest event_id (code points)."""
    await connection.execute(
        f"""
        INSERT INTO inspections ({", ".join(INSPECTION_COLUMNS)})
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                             $7::boolean[])
        ON CONFLICT (inspection_id) DO UPDATE SET
            event_id = EXCLUDED.event_id, unit_id = EXCLUDED.unit_id,
            inspected_unit_id = EXCLUDED.inspected_unit_id, completed_at = EXCLUDED.completed_at,
            topic = EXCLUDED.topic, digital = EXCLUDED.digital
        WHERE (EXCLUDED.completed_at, EXCLUDED.event_id COLLATE "C")
            < (inspections.completed_at, inspections.event_id COLLATE "C")
        """,
        *columns_of(records, len(INSPECTION_COLUMNS)),
    )


def columns_of(records: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into one list per column (the unnest parameters)."""
    return [list(column) for column in zip(*records, strict=True)] if records else [[] for _ in range(width)]
