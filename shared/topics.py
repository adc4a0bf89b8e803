"""Kafka topic names: the public contract (event-contract.md) and the services' internal topics."""

from faststream.kafka import Topic

# Partitions of a topic a subscriber creates when it is missing (keyed by unit: the unit of scale-out).
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


def declared(name: str) -> Topic:
    """Return a subscribed topic, created with `PARTITIONS` partitions if missing."""
    return Topic(name, num_partitions=PARTITIONS)
