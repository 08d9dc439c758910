"""Many small writes from the event loop, one transaction for those that arrive together.

On the deadline day the bot records many small facts at once: outbox rows sent to many chats, Zalo
events held before their answer and released once handled. One transaction each costs a commit (a WAL
flush on PostgreSQL) and a worker thread's turn per row; that was the outbox sender's main cost. A
`Coalescer` runs its `write` in a thread for everything submitted while the previous write ran, and
each `submit` returns once its own item is committed (or raises what the write raised), so callers keep
the order and the guarantees they had when they wrote alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    def __init__(self, write: Callable[[list[T]], None]) -> None:
        self.write = write
        self.writes = 0  # transactions so far
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Write `item` with whatever else is waiting; returns once it is committed."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_waiting())
        await done

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(self.write, [item for item, _ in batch])
            except Exception as exc:  # each caller sees the failure, as it would have alone
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                self.writes += 1
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
