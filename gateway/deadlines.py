"""The last resort of a request's deadline: a request still running past it is cancelled.

``asyncio.timeout`` would do, at the price of a timer of the event loop's per request
(with uvloop, a libuv timer made, started and closed), the largest single cost of a
small request's own path. Here the requests due in the same tenth of a second share one
timer: each is cancelled at most ``RESOLUTION_S`` after its deadline, which is a last
resort anyway (every source read is bounded by the deadline itself, loaders/base.py
``source_timeout``).
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["RESOLUTION_S", "Deadlines"]

#: How much later than its deadline a request may be cancelled.
RESOLUTION_S = 0.1


class Deadlines:
    """The deadlines of the requests running on one event loop.

    ``watch`` a task with its deadline before awaiting its work; ``expired`` after a
    ``CancelledError`` tells whether the deadline cancelled it (then take the
    cancellation back with ``Task.uncancel``, as ``asyncio.timeout`` does, and answer
    that time ran out); ``forget`` it when the work is over, whichever way.
    """

    __slots__ = ("_due", "_expired", "_loop")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        #: By tick (deadline / RESOLUTION_S, rounded up): the tasks due then.
        self._due: dict[int, dict[asyncio.Task[object], None]] = {}
        #: Tasks the deadline cancelled, until forgotten.
        self._expired: set[asyncio.Task[object]] = set()

    def watch(self, task: asyncio.Task[object], seconds: float) -> int:
        """Cancel ``task`` if it is still watched ``seconds`` from now; its tick."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run several): start afresh
            self._loop, self._due, self._expired = loop, {}, set()
        tick = math.ceil((loop.time() + seconds) / RESOLUTION_S)
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = {}
            loop.call_at(tick * RESOLUTION_S, self._expire, tick)
        due[task] = None
        return tick

    def _expire(self, tick: int) -> None:
        for task in self._due.pop(tick, ()):
            if not task.done():
                self._expired.add(task)
                task.cancel()

    def expired(self, task: asyncio.Task[object]) -> bool:
        """Whether the deadline cancelled ``task``."""
        return task in self._expired

    def forget(self, task: asyncio.Task[object], tick: int) -> None:
        """Stop watching ``task``; a cancellation its deadline made is taken back."""
        due = self._due.get(tick)
        if due is not None:
            due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
