"""The outbox as a queue: claim rows to send, record what happened, recover from crashes.

Every outgoing message is a row first. A sender claims a batch (status "sending", `claimed_at`); on
PostgreSQL the claim skips rows other processes hold (`FOR UPDATE SKIP LOCKED`), on SQLite the single
writer serialises claims. Lower priority numbers go first (interactive replies before reminders), and
a row whose `not_before` lies ahead waits, and so do the rows of its chat behind it. A live sender
renews the claims it holds well within `STALE_CLAIM`; a row whose claim is older than that was left by a
process that died, and is put back — delivery is at least once, and a row is never claimed by two live
senders at once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, or_, select

from storage.models import Member, Outbox, table_of
from storage.pipeline import Rows, write_all

STALE_CLAIM = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Claimed:
    id: int
    chat_id: str
    payload_json: str
    attempts: int
    priority: int
    parts_sent: int = 0  # of a message in several calls, already delivered by an earlier attempt


def claim(s: Session, channel: str, now: dt.datetime, limit: int = 100) -> list[Claimed]:
    """Rows due now, except those queued behind an earlier row of their chat that is still being sent
    or waiting for a retry: a chat's messages go out in the order they were written."""
    earlier = sa.orm.aliased(Outbox)
    held_back = (
        select(earlier.id)
        .where(
            earlier.channel == Outbox.channel,
            earlier.chat_id == Outbox.chat_id,
            col(earlier.id) < col(Outbox.id),
            or_(
                earlier.status == "sending",
                sa.and_(col(earlier.status) == "pending", col(earlier.not_before) > now),
            ),
        )
        .exists()
    )
    ids = list(
        s.exec(
            select(Outbox.id)
            .where(
                Outbox.channel == channel,
                Outbox.status == "pending",
                or_(col(Outbox.not_before).is_(None), col(Outbox.not_before) <= now),
                ~held_back,
            )
            .order_by(col(Outbox.priority), col(Outbox.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    s.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(ids), col(Outbox.status) == "pending")
        .values(status="sending", claimed_at=now)
    )
    rows = s.exec(
        select(Outbox).where(col(Outbox.id).in_(ids), Outbox.status == "sending", Outbox.claimed_at == now)
    )
    return sorted(
        (
            Claimed(r.id, r.chat_id, r.payload_json, r.attempts, r.priority, r.parts_sent)
            for r in rows
            if r.id is not None
        ),
        key=lambda c: (c.priority, c.id),
    )


def mark_sent(s: Session, ids: Iterable[int], now: dt.datetime, external_id: str | None = None) -> None:
    values: dict[str, object] = {"status": "sent", "sent_at": now}
    if external_id is not None:
        values["external_id"] = external_id
    s.execute(sa.update(Outbox).where(col(Outbox.id).in_(list(ids))).values(**values))


_SENT = (
    sa.update(table_of(Outbox))
    .where(table_of(Outbox).c.id == sa.bindparam("w_id"))
    .values(status="sent", sent_at=sa.bindparam("sent_at"), external_id=sa.bindparam("external_id"))
)


def mark_each_sent(s: Session, sent: Sequence[tuple[int, str | None]], now: dt.datetime) -> None:
    """Rows sent, each with the channel's id for its message (or None): one statement for all
    (storage/pipeline.py), so a sender delivering to many chats at once records them together."""
    rows = [{"w_id": row_id, "sent_at": now, "external_id": external_id} for row_id, external_id in sent]
    write_all(s.connection(), [Rows(_SENT, rows)])


def retry_later(s: Session, row_id: int, at: dt.datetime, error: str, parts_sent: int | None = None) -> None:
    """The row waits until `at` for another attempt; `parts_sent`: how much of it has gone out by now."""
    values: dict[str, object] = dict(
        status="pending",
        not_before=at,
        attempts=Outbox.attempts + 1,
        last_error=error[:2000],
        claimed_at=None,
    )
    if parts_sent is not None:
        values["parts_sent"] = parts_sent
    s.execute(sa.update(Outbox).where(col(Outbox.id) == row_id).values(**values))


def record_parts(s: Session, row_id: int, parts_sent: int) -> None:
    """The first `parts_sent` calls of a claimed message have gone out: no attempt sends them again."""
    s.execute(
        sa.update(Outbox)
        .where(col(Outbox.id) == row_id, col(Outbox.status) == "sending", col(Outbox.parts_sent) < parts_sent)
        .values(parts_sent=parts_sent)
    )


def mark_failed(s: Session, row_id: int, error: str) -> None:
    s.execute(
        sa.update(Outbox)
        .where(col(Outbox.id) == row_id)
        .values(status="failed", attempts=Outbox.attempts + 1, last_error=error[:2000])
    )


def requeue_stale(s: Session, channel: str, now: dt.datetime, stale_after: dt.timedelta = STALE_CLAIM) -> int:
    """Rows a dead sender left in "sending" go back to the queue."""
    result = s.execute(
        sa.update(Outbox)
        .where(
            col(Outbox.channel) == channel,
            col(Outbox.status) == "sending",
            col(Outbox.claimed_at) < now - stale_after,
        )
        .values(status="pending", claimed_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def renew(s: Session, ids: Iterable[int], now: dt.datetime) -> None:
    """A live sender still holds these rows: their claims start again from `now`."""
    ids = list(ids)
    if ids:
        s.execute(
            sa.update(Outbox)
            .where(col(Outbox.id).in_(ids), col(Outbox.status) == "sending")
            .values(claimed_at=now)
        )


def pending(s: Session, channel: str, chat_id: str | None = None, limit: int = 100) -> list[Outbox]:
    query = select(Outbox).where(Outbox.channel == channel, Outbox.status == "pending")
    if chat_id is not None:
        query = query.where(Outbox.chat_id == chat_id)
    return list(s.exec(query.order_by(col(Outbox.priority), col(Outbox.id)).limit(limit)))


def set_blocked(s: Session, channel: str, chat_id: str, at: dt.datetime | None) -> int:
    """The user blocked (`at`) or unblocked (None) the bot; a block fails what waits for them."""
    s.execute(
        sa.update(Member)
        .where(col(Member.channel) == channel, col(Member.chat_id) == chat_id)
        .values(blocked_at=at)
    )
    if at is None:
        return 0
    result = s.execute(
        sa.update(Outbox)
        .where(
            col(Outbox.channel) == channel, col(Outbox.chat_id) == chat_id, col(Outbox.status) == "pending"
        )
        .values(status="failed", last_error="blocked by the user")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def status_counts(s: Session, channel: str | None = None) -> dict[str, int]:
    query = select(Outbox.status, sa.func.count()).group_by(col(Outbox.status))
    if channel is not None:
        query = query.where(Outbox.channel == channel)
    return {status: int(n) for status, n in s.exec(query)}


def release(s: Session, ids: Iterable[int]) -> None:
    """Claimed rows put back untouched (they waited behind an earlier message of the same chat)."""
    s.execute(
        sa.update(Outbox)
        .where(col(Outbox.id).in_(list(ids)), col(Outbox.status) == "sending")
        .values(status="pending", claimed_at=None)
    )


def last_keyboard(s: Session, channel: str, chat_id: str) -> list[dict[str, str]]:
    """The buttons of the last message with buttons sent to this chat (so "#2" can be typed)."""
    rows = s.exec(
        select(Outbox)
        .where(Outbox.channel == channel, Outbox.chat_id == chat_id, Outbox.status == "sent")
        .order_by(col(Outbox.id).desc())
        .limit(20)
    )
    for row in rows:
        buttons = json.loads(row.payload_json).get("buttons") or []
        if buttons:
            return list(buttons)
    return []
