"""The dispatcher: async channels' messages to the service in batches, one chat's messages in order.

Channels on an event loop hand each message here. A chat's messages go one at a time, in the order they
came; messages of different chats that queue up while the workers are busy (the deadline-day rush) go
together as the next batch (`Service.handle_batch`: one transaction for all of them). The work runs on
a worker thread, or in a database process of its own (bot/db_process.py) under `dtibot run`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.db_process import DatabaseProcess

if TYPE_CHECKING:
    from bot.service import Item, Service

# Threads running the blocking database work, each one transaction (a batch) at a time. SQLite has one
# writer, so more threads only queue on its lock; on PostgreSQL a second thread only splits the queue
# into smaller batches and contends for the GIL (bench/RESULTS.md).
WORKERS = 1
# With a database process, batches handed to it at a time: the next one waits in its queue while it
# handles one, so it does not idle while a result travels back (bench/RESULTS.md, tenth session).
IN_FLIGHT_PROCESS = 2


@dataclass
class _Queued:
    """A message waiting for a worker, and where its outcome goes."""

    item: Item
    done: asyncio.Future[list[int]]

    @property
    def chat(self) -> tuple[str, str]:
        return self.item[0], self.item[1]


@dataclass
class Dispatcher:
    service: Service
    _async_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _executor: ThreadPoolExecutor | None = None
    _process: DatabaseProcess | None = None
    _queue: deque[_Queued] = field(default_factory=deque)
    _in_flight: set[tuple[str, str]] = field(default_factory=set)
    _batches: int = 0

    def worker_count(self) -> int:
        """Batches handled at a time: threads, or batches handed to the database process."""
        return self.service.workers or (IN_FLIGHT_PROCESS if self.service.db_process else WORKERS)

    def executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.worker_count(), thread_name_prefix="dti-db")
            return self._executor

    async def submit(self, item: Item) -> list[int]:
        """Handle one message after the chat's earlier ones; its outbox row ids (or its exception)."""
        lock = self._async_locks.setdefault(item[:2], asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            queued = _Queued(item, loop.create_future())
            self._queue.append(queued)
            self._start_batches(loop)
            return await queued.done

    def _start_batches(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand queued messages to idle workers, each a batch of different chats not in flight."""
        limit = self.service.max_batch if self.service.group_commit else 1
        while self._queue and self._batches < self.worker_count():
            batch: list[_Queued] = []
            waiting: deque[_Queued] = deque()
            chats: set[tuple[str, str]] = set()
            for queued in self._queue:
                if len(batch) < limit and queued.chat not in chats and queued.chat not in self._in_flight:
                    batch.append(queued)
                    chats.add(queued.chat)
                else:
                    waiting.append(queued)
            if not batch:
                return
            self._queue = waiting
            self._in_flight |= chats
            self._batches += 1
            items = [q.item for q in batch]
            running: asyncio.Future[list[list[int] | BaseException]]
            if self.service.db_process:
                running = loop.create_task(self._in_process(items))
            else:
                running = loop.run_in_executor(self.executor(), self.service.handle_batch, items)
            running.add_done_callback(functools.partial(self._batch_done, loop, batch, chats))

    def _batch_done(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Queued],
        chats: set[tuple[str, str]],
        running: asyncio.Future[list[list[int] | BaseException]],
    ) -> None:
        self._batches -= 1
        self._in_flight -= chats
        failed = running.exception() if not running.cancelled() else asyncio.CancelledError()
        outcomes: Sequence[list[int] | BaseException] = (
            running.result() if failed is None else [failed] * len(batch)
        )
        for queued, outcome in zip(batch, outcomes, strict=True):
            if queued.done.done():
                continue  # its caller was cancelled
            if isinstance(outcome, BaseException):
                queued.done.set_exception(outcome)
            else:
                queued.done.set_result(outcome)
        self._start_batches(loop)

    def database_process(self) -> DatabaseProcess:
        with self._guard:
            if self._process is None:
                self._process = DatabaseProcess.of(self.service)
            return self._process

    async def _in_process(self, items: Sequence[Item]) -> list[list[int] | BaseException]:
        from bot.service import Unavailable

        try:
            return await self.database_process().handle_batch(items, self.service.attempts)
        except BrokenProcessPool as exc:
            return [Unavailable(f"the database process kept dying: {exc!r}") for _ in items]

    def close(self) -> None:
        """Stop the database process and threads once every message handed over was handled."""
        with self._guard:
            process, self._process = self._process, None
            executor, self._executor = self._executor, None
        if process is not None:
            process.close()
        if executor is not None:
            executor.shutdown(wait=True)
