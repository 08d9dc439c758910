"""Zalo state in the database: the OA token pair and each contact's last inbound message."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from storage.models import Contact, ZaloToken, table_of

TOKEN_ID = 1


def token(s: Session, *, lock: bool = False) -> ZaloToken | None:
    """The OA's token pair; with `lock`, held until the transaction ends, so one process at a time
    refreshes (a row lock on PostgreSQL; SQLite, which has none, takes its database write lock)."""
    query = select(ZaloToken).where(ZaloToken.id == TOKEN_ID)
    if lock:
        if s.get_bind().dialect.name == "sqlite":
            s.execute(sa.update(ZaloToken).where(sa.column("id") == TOKEN_ID).values(id=TOKEN_ID))
        else:
            query = query.with_for_update()
    return s.exec(query).first()


def save_token(s: Session, access: str, refresh: str, expires_at: dt.datetime, now: dt.datetime) -> ZaloToken:
    row = token(s) or ZaloToken(
        id=TOKEN_ID, access_token=access, refresh_token=refresh, expires_at=expires_at
    )
    row.access_token, row.refresh_token, row.expires_at = access, refresh, expires_at
    row.refreshed_at, row.failed_at, row.error = now, None, None
    s.add(row)
    s.flush()
    return row


def refresh_failed(s: Session, error: str, now: dt.datetime) -> None:
    row = token(s)
    if row is not None:
        row.failed_at, row.error = now, error[:2000]
        s.add(row)


def touch(s: Session, channel: str, chat_id: str, now: dt.datetime, *, following: bool = True) -> None:
    """Record an inbound event; one upsert, because a user's events arrive concurrently."""
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Contact).values(
        channel=channel, chat_id=chat_id, last_inbound_at=now, following=following
    )
    current = table_of(Contact).c.last_inbound_at
    statement = statement.on_conflict_do_update(
        index_elements=["channel", "chat_id"],
        set_={
            "last_inbound_at": sa.case(
                (current > statement.excluded.last_inbound_at, current),
                else_=statement.excluded.last_inbound_at,
            ),
            "following": following,
        },
    )
    s.execute(statement)


def last_inbound(s: Session, channel: str, chat_id: str) -> dt.datetime | None:
    row = s.get(Contact, (channel, chat_id))
    return row.last_inbound_at if row is not None else None
