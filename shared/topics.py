"""Kafka topic names: the public contract (event-contract.md) and the services' internal topics."""

CASE_EVENTS = "dvc.case-events.v1"
DOCUMENT_EVENTS = "dvc.document-events.v1"
DEAD_LETTERS = "dvc.dead-letters.v1"
ALERTS = "dvc.alerts.v1"

# Internal: keys of what changed (ingest -> metrics) and KPI counts (metrics -> alerts).
CHANGES = "dvc.changes.v1"
KPI_UPDATES = "dvc.kpi-updates.v1"
