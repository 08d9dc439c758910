"""The loop that makes good what a crashed process held: updates answered for, never handled.

Both channels answer some inbound updates before handling them (a Telegram webhook's album parts, every
Zalo event, which Zalo wants answered within about two seconds) and hold each in the database until it
is handled (storage/held.py). A process that dies in between leaves them held; every running process
looks for such updates at start and every few seconds and handles those old enough that no live
process can still be on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

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
