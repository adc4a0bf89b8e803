"""Common code of dvc-monitor: contracts (events, topics), settings, database and app wiring."""
