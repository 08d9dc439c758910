"""The loop that makes good what a crashed process held: updates answered for, never handled.

Both channels answer some inbound updates before handling them (a Telegram webhook's album parts, every
Zalo event, which Zalo wants answered within about two seconds) and hold each in the database until it
is handled (storage/held.py). A process that dies in between leaves them held; every running process
looks for such updates at start and every few seconds (`replay_held`) and handles those old enough that
no live process can still be on them. `HeldUpdates` is the channels' side of storage/held.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from bot.coalesce import Coalescer
from storage.db import Database
from storage.held import Held, held, hold, release

log = logging.getLogger(__name__)


async def replay_held(replay: Callable[[], Awaitable[int]], stop: asyncio.Event, every: float) -> None:
    """Call `replay` (which handles the stale held updates and says how many) until `stop` is set."""
    while not stop.is_set():
        try:
            replayed = await replay()
        except Exception:  # the database may be down for a while: look again next time
            log.exception("looking for held updates failed")
        else:
            if replayed:
                log.info("handling %d updates held by a process that stopped", replayed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


class HeldUpdates:
    """storage/held.py for one channel, from the event loop. Also tracks the updates this process
    holds or is replaying (`here`), so it never takes its own for a crashed process's. Holds and
    releases that arrive together share a transaction (`bot.coalesce`)."""

    def __init__(self, db: Database, channel: str, clock: Callable[[], dt.datetime]) -> None:
        self.db, self.channel, self.clock = db, channel, clock
        self.here: set[str] = set()
        self._holds: Coalescer[tuple[str, str, str]] = Coalescer(lambda rows: self._hold(rows))
        self._releases: Coalescer[str] = Coalescer(lambda ids: self._release(ids))

    async def hold(self, update_id: str, chat_id: str, update_json: str) -> None:
        """Keep the update until `release` (raises the database's error if it cannot)."""
        await self._holds.submit((update_id, chat_id, update_json))
        self.here.add(update_id)

    async def release(self, update_ids: Sequence[str]) -> None:
        """The updates have been handled; a database error is logged (they are handled again later,
        which their inbound ids make a no-op)."""
        try:
            await asyncio.gather(*(self._releases.submit(u) for u in update_ids))
        except SQLAlchemyError:
            log.warning("%s updates %s handled but still held", self.channel, list(update_ids))
            return
        self.here.difference_update(update_ids)

    async def stale(self, age: dt.timedelta) -> list[Held]:
        """Updates held for longer than `age` by another process, now taken by this one (`here`)."""
        rows = [r for r in await asyncio.to_thread(self._held, age) if r.update_id not in self.here]
        self.here.update(r.update_id for r in rows)
        return rows

    def _hold(self, rows: list[tuple[str, str, str]]) -> None:
        with self.db.session() as s:
            hold(s, self.channel, rows, self.clock())

    def _held(self, age: dt.timedelta) -> list[Held]:
        with self.db.session() as s:
            return held(s, self.channel, self.clock() - age)

    def _release(self, update_ids: list[str]) -> None:
        with self.db.session() as s:
            release(s, self.channel, update_ids)
