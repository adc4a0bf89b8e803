"""`dvc simulate` machinery: a realistic, deterministic generator of contract events, and its publisher."""

from simulator.publish import Pacer, Progress, SendStats, drain, publish
from simulator.stream import SimEvent, generate_events, read_truth, record_truth, truth_line

__all__ = [
    "Pacer",
    "Progress",
    "SendStats",
    "SimEvent",
    "drain",
    "generate_events",
    "publish",
    "read_truth",
    "record_truth",
    "truth_line",
]
