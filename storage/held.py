"""Inbound updates answered for before they were handled, kept until they are.

A Telegram webhook answers each part of an album (several photos or files sent at once) as soon as it
has it: Telegram may wait for that answer before sending the next part, and the album is handled only
once its parts stop coming. Between the answer and the handling Telegram has forgotten the part, so
it is held here; the album's handling releases it. What stays held well beyond an album's wait was
left by a process that stopped in between, and any process handles it (`HELD_STALE`: younger parts may
still be on their way to an album a live process is collecting). Handling is exactly once either way:
the album's inbound id is recorded with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.models import HeldUpdate

HELD_STALE = dt.timedelta(seconds=30)  # an album is handled within seconds of its last part


@dataclass(frozen=True)
class Held:
    update_id: str
    chat_id: str
    update_json: str


def hold(s: Session, channel: str, updates: Sequence[tuple[str, str, str]], now: dt.datetime) -> None:
    """Keep updates, each (update id, chat id, the update as JSON), until `release`; holding one
    already held (delivered again, perhaps at the same moment) changes nothing."""
    if not updates:
        return
    rows = [
        dict(channel=channel, update_id=u, chat_id=c, update_json=j, received_at=now) for u, c, j in updates
    ]
    insert = sqlite.insert if s.get_bind().dialect.name == "sqlite" else postgresql.insert
    s.execute(insert(HeldUpdate).values(rows).on_conflict_do_nothing())


def held(s: Session, channel: str, before: dt.datetime) -> list[Held]:
    """What the channel holds since before `before`, oldest update first."""
    rows = s.exec(
        select(HeldUpdate)
        .where(col(HeldUpdate.channel) == channel, col(HeldUpdate.received_at) < before)
        .order_by(col(HeldUpdate.received_at), col(HeldUpdate.update_id))
    )
    return [Held(r.update_id, r.chat_id, r.update_json) for r in rows]


def release(s: Session, channel: str, update_ids: Sequence[str]) -> None:
    """The updates have been handled."""
    if update_ids:
        s.execute(
            sa.delete(HeldUpdate).where(
                col(HeldUpdate.channel) == channel, col(HeldUpdate.update_id).in_(list(update_ids))
            )
        )


def held_count(s: Session, channel: str) -> tuple[int, dt.datetime | None]:
    """How many updates the channel holds, and when the oldest came (operators: a number that stays up
    means updates that fail to be handled)."""
    count, oldest = s.exec(
        select(sa.func.count(), sa.func.min(HeldUpdate.received_at)).where(col(HeldUpdate.channel) == channel)
    ).one()
    return int(count), oldest
