"""The database work of an async bot in a process of its own, on the machine's second core.

A bot process is CPU-bound on the deadline day, and its threads share one core's worth of Python (the
GIL): the event loop (aiogram parsing and routing updates, downloads, delivery) and the database
thread (reading a batch, the engine's step and running total, rendering, writing) take turns, so
the process handles about 1 ÷ their summed CPU time per update. Here the batches run in a child
process instead (`Service(db_process=True)`, the default of `dtibot run telegram` and `run zalo`):
the two halves run side by side and the parent's event loop no longer waits for the GIL behind a
batch. Only the batch's messages go to the child and their outbox row ids come back.

Nothing about exactly-once changes: the child runs the same `Service.handle_batch`, and the service
already is safe for several processes (row locks, the optimistic session version, processed inbound
ids). If the child dies, the batch is sent again to a new one; what the dead one committed is
recognised by its inbound ids and not applied twice. The child ends when its parent closes it or dies
(it watches its parent's id), so a killed bot leaves no worker behind to write after it; the signals
that stop a bot (Ctrl-C, a service manager's SIGTERM to the whole group) are left to the parent, which
finishes what it is handling first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import datetime as dt

    from bot.service import Item, Service

log = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 0.2
T = TypeVar("T")

_service: Service | None = None


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the bot died: whatever this process is doing rolls back with its connection
        time.sleep(PARENT_CHECK_SECONDS)


@dataclass(frozen=True)
class Settings:
    """What the child's service is made with; pickled, so the clock and escapes must be module-level
    functions."""

    url: str
    escapes: dict[str, Callable[[str], str]]
    clock: Callable[[], dt.datetime]
    attempts: int
    backoff: tuple[float, ...]
    max_batch: int


def _start(settings: Settings, parent: int, log_level: int) -> None:
    global _service
    # Ctrl-C in a terminal and a service manager's stop reach every process of the bot: the parent
    # finishes what it is handling, which needs this process until it closes it (or dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot import heap
    from bot.service import Service
    from storage.db import Database

    _service = Service(
        Database(settings.url),
        clock=settings.clock,
        escapes=settings.escapes,
        attempts=settings.attempts,
        backoff=settings.backoff,
        max_batch=settings.max_batch,
        db_process=False,
    )
    heap.settle()


def _portable(outcome: list[int] | BaseException) -> list[int] | BaseException:
    """An outcome that survives the way back: an exception that cannot be pickled (some of the
    database driver's) becomes a RuntimeError saying what it was."""
    if not isinstance(outcome, BaseException):
        return outcome
    try:
        pickle.loads(pickle.dumps(outcome))
    except Exception:
        return RuntimeError(f"{type(outcome).__name__}: {outcome}")
    return outcome


def _handle_batch(items: Sequence[Item]) -> list[list[int] | BaseException]:
    assert _service is not None, "the database process was not started"
    return [_portable(outcome) for outcome in _service.handle_batch(items)]


def _ready() -> int:
    return os.getpid()


class DatabaseProcess:
    """One child process running `Service.handle_batch` for a service made with `settings`."""

    def __init__(self, settings: Settings) -> None:
        self._init = (settings, os.getpid(), logging.getLogger().getEffectiveLevel())
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, service: Service) -> DatabaseProcess:
        return cls(
            Settings(
                service.db.url,
                dict(service.escapes),
                service.clock,
                service.attempts,
                service.backoff,
                service.max_batch,
            )
        )

    def pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    1,
                    mp_context=multiprocessing.get_context("spawn"),  # a fork would copy threads and locks
                    initializer=_start,
                    initargs=self._init,
                )
            return self._pool

    def start(self) -> concurrent.futures.Future[int]:
        """Start the child now (its imports take about a second) rather than at the first batch; the
        future gives its process id once it is ready."""
        return self.pool().submit(_ready)

    async def handle_batch(self, items: Sequence[Item], attempts: int) -> list[list[int] | BaseException]:
        """`Service.handle_batch` in the child. If the child dies, the batch goes to a new one (what
        the dead one committed is recognised by its inbound ids); BrokenProcessPool once `attempts`
        children died on it."""
        return await self._call(attempts, _handle_batch, items)

    async def ready(self, attempts: int = 3) -> int:
        """The child's process id once it is ready to take a batch (a new child for a dead one)."""
        return await self._call(attempts, _ready)

    async def _call(self, attempts: int, fn: Callable[..., T], *args: object) -> T:
        for attempt in range(attempts):
            pool = self.pool()
            try:
                return await asyncio.wrap_future(pool.submit(fn, *args))
            except BrokenProcessPool as exc:
                self._replace(pool, exc)
                if attempt == attempts - 1:
                    raise
        raise BrokenProcessPool("no attempt")

    def _replace(self, broken: concurrent.futures.ProcessPoolExecutor, exc: BaseException) -> None:
        """The child of `broken` died: the next batch starts a new one (once, however many batches
        were in flight)."""
        with self._lock:
            if self._pool is not broken:
                return
            self._pool = None
        log.warning("database process died (%r); starting another", exc)
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
