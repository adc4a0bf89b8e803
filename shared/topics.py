"""Kafka topic names: the public contract (event-contract.md) and the services' internal topics."""

from faststream.kafka import Topic

# Partitions of every topic `dvc kafka setup` creates (keyed by unit: the unit of scale-out).
# Existing topics keep theirs; operators raise it with kafka-topics.sh when they add instances.
PARTITIONS = 4

CASE_EVENTS = "dvc.case-events.v1"
DOCUMENT_EVENTS = "dvc.document-events.v1"
DEAD_LETTERS = "dvc.dead-letters.v1"
ALERTS = "dvc.alerts.v1"

# Internal: keys of what changed (ingest -> metrics) and KPI counts (metrics -> alerts).
CHANGES = "dvc.changes.v1"
KPI_UPDATES = "dvc.kpi-updates.v1"
# Internal messages that failed validation or processing, isolated so the rest of their batch goes on.
INTERNAL_DEAD_LETTERS = "dvc.internal-dead-letters.v1"

# Records per batch that ingest consumes from the upstream topics (the platform rules watch full batches).
INGEST_MAX_RECORDS = 2000

# v1.1 upstream topics of the reporting and inspection systems.
REPORT_EVENTS = "dvc.report-events.v1"
INSPECTION_EVENTS = "dvc.inspection-events.v1"

# How long each topic keeps messages (Kafka's retention.ms); dead letters are kept for a month. Only the
# topics whose records our services stamp when they send them: Kafka's time retention reads the record
# timestamps, and upstream stamps its records with the time the event happened.
RETENTION_DAYS = {
    DEAD_LETTERS: 30,
    INTERNAL_DEAD_LETTERS: 30,
    CHANGES: 7,
    KPI_UPDATES: 7,
    ALERTS: 7,
}
# The upstream topics are kept by size only (retention.ms = -1, retention.bytes per partition). Their
# records carry the time the event happened (the completeness watermark reads it), so a replayed history
# is months or years old: with time retention the broker deleted it at its next retention check, before
# ingest had read it, and the consumer skipped to the new log start without a word. 4 GiB per partition
# holds about eight million events per topic (a province's year is about five million).
UPSTREAM_RETENTION_BYTES = {
    CASE_EVENTS: 4 * 1024**3,
    DOCUMENT_EVENTS: 4 * 1024**3,
    REPORT_EVENTS: 4 * 1024**3,
    INSPECTION_EVENTS: 4 * 1024**3,
}


def declared(name: str) -> Topic:
    """Return a subscribed topic (with `PARTITIONS` partitions, as `dvc kafka setup` creates it)."""
    return Topic(name, num_partitions=PARTITIONS)
