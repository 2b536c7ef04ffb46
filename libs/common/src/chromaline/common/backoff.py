"""Waits between attempts that grow exponentially, with jitter so that many processes which lost
the same dependency at the same moment do not all come back at the same moment."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, initial: float, maximum: float) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1): between half and
    all of ``initial`` doubled per attempt, never more than ``maximum``."""
    ceiling = min(maximum, initial * 2 ** max(attempt - 1, 0))
    return float(ceiling * random.uniform(0.5, 1.0))
