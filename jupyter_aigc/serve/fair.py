"""Fair shares of llama.cpp's slots across students.

Each student has a queue of their own. When a slot frees, it goes to the waiting student with the fewest requests
running, and among equals to the one served longest ago: one student's sixteen requests cannot hold back another
student's one. No student runs more than ``per_student`` requests at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque


class FairQueue:
    def __init__(self, slots: int, per_student: int):
        self.slots = max(1, slots)
        self.per_student = max(1, per_student)
        self.running: Counter[str] = Counter()
        self.waiting: dict[str, deque[asyncio.Future]] = {}
        self._turns = itertools.count()
        self._last_turn: dict[str, int] = {}

    def queued(self, student: str | None = None) -> int:
        if student is not None:
            return sum(not f.done() for f in self.waiting.get(student, ()))
        return sum(not f.done() for queue in self.waiting.values() for f in queue)

    def busy(self) -> int:
        return sum(self.running.values())

    async def acquire(self, student: str) -> None:
        """Wait for a slot (returns holding it; ``release`` gives it back). Cancelled while waiting (the student
        went away), it leaves the queue; cancelled just as the slot came, it gives the slot back."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(student, deque()).append(future)
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(student)
            else:
                future.cancel()
                self._dispatch()
            raise

    def release(self, student: str) -> None:
        self.running[student] -= 1
        if self.running[student] <= 0:
            del self.running[student]
        self._dispatch()

    def _dispatch(self) -> None:
        while self.busy() < self.slots:
            for queue in self.waiting.values():
                while queue and queue[0].done():  # cancelled while waiting
                    queue.popleft()
            ready = [s for s, queue in self.waiting.items() if queue and self.running[s] < self.per_student]
            if not ready:
                break
            student = min(ready, key=lambda s: (self.running[s], self._last_turn.get(s, -1)))
            future = self.waiting[student].popleft()
            if not self.waiting[student]:
                del self.waiting[student]
            self.running[student] += 1
            self._last_turn[student] = next(self._turns)
            future.set_result(None)
