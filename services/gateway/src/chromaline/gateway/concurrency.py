"""How many long-lived pieces of work one user may hold at once in this gateway replica.

A progress WebSocket polls the database for as long as its job runs, and a batch archive is built
whole in a temporary file before it is sent: without a bound, one user could open sockets or ask
for archives until the replica runs out of connections, disk or time. The count is kept in the
replica's memory (the work it counts lives there too), so with several replicas a user may hold
this many in each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class SlotsTaken(Exception):
    """The user already holds every slot of this kind."""


class UserSlots:
    """At most ``limit`` slots per user at once; a slot is held for the length of a ``with``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()

    @contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        """Take one of ``user_id``'s slots for the block; :class:`SlotsTaken` when none is free."""
        if self._held[user_id] >= self.limit:
            raise SlotsTaken(user_id)
        self._held[user_id] += 1
        try:
            yield
        finally:
            self._held[user_id] -= 1
            if not self._held[user_id]:
                del self._held[user_id]
