"""The service every channel calls: inbound messages in, outbox rows out, exactly once.

A single message is a batch of one: `handle_batch` is the one path. In one transaction for the batch:
the messages already handled are skipped (their inbound ids), each chat's snapshot is read
(storage/load.py; on PostgreSQL the conversation rows are locked, so several processes take turns on a
chat), the pure engine decides, the replies and notices are rendered, and everything is recorded
(storage/record.py) with the inbound ids. Nothing is sent from here: channels deliver the outbox, so a
crash after the commit loses nothing and a crash before it changes nothing.

Two kinds of failure. A conflict (a chat or an assessment changed by another process, an invite used
meanwhile, a racing duplicate) rolls the batch back and its messages are handled again, each alone,
on fresh data. Anything else is a bug: it is logged at ERROR with the batch's inbound ids and counted
(`Service.unexpected`; the tests fail if one happens), the other messages of the batch are handled
alone, and the failing one gets its exception. An unreachable database is retried with backoff, then
the messages are `Unavailable` and the channel asks the user to send again. Async channels go through
the dispatcher (bot/dispatch.py), which forms the batches and keeps each chat's messages in order.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot import catalog
from bot.db_process import DatabaseProcess
from bot.dispatch import Dispatcher
from bot.i18n import Translator
from bot.outbound import Document, Outbound, OutButton
from bot.render.reply import ReplyRenderer
from flows import step
from flows.appraise import focus
from flows.engine import join_code
from flows.model import Decision, Inbound, InboundKind, JoinUnit, Reply, SetLanguage, Snapshot, WebLinkOffer
from flows.web import asks_for_web_link
from scoring.model import Framework
from storage.db import Database
from storage.load import Loaded, Message, load, recipients
from storage.record import ConcurrentUpdate, Outgoing, Write, write
from storage.tables import WEB, open_web_chat
from storage.web import links_since

# What makes a batch's messages go again, each on its own, on fresh data.
CONFLICTS = (ConcurrentUpdate, IntegrityError)

log = logging.getLogger(__name__)

ATTEMPTS = 5
BACKOFF = (0.2, 0.5, 1.0, 2.0)  # seconds between attempts while the database is unreachable or locked
# Messages of different chats waiting while a worker is busy go together into one transaction; more
# than this per transaction only holds locks longer.
MAX_BATCH = 32
# Conflicts and unexpected errors of a batch count here; the tests check it stays 0 for the latter.
UNEXPECTED: list[str] = []


def _invite_code(inbound: Inbound) -> str | None:
    return join_code(inbound.text) if inbound.kind is InboundKind.TEXT else None


class Unavailable(RuntimeError):
    """The database stayed unreachable or locked through every attempt: nothing was stored, and the
    channel must tell the user to send the message again."""


WEB_URL_ENV = "DTI_WEB_URL"
DEFAULT_WEB_URL = "http://127.0.0.1:8090"


def web_url() -> str:
    """The web workspace's public base address, for the links the chat and the CLI give out."""
    return os.environ.get(WEB_URL_ENV, "").strip().rstrip("/") or DEFAULT_WEB_URL


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def resolve_framework(framework_id: str, version: str) -> Framework:
    """A period's pinned framework. A version never changes once a period uses it, so each is read
    once per process (and per `DTI_FRAMEWORKS_DIR`), not on every message."""
    return _pinned(framework_id, version, os.environ.get("DTI_FRAMEWORKS_DIR"))


@functools.lru_cache(maxsize=64)
def _pinned(framework_id: str, version: str, frameworks_dir: str | None) -> Framework:
    return catalog.framework(f"{framework_id}@{version}")


def _identity(text: str) -> str:
    return text


def render(reply: Reply, language: str, escape: Callable[[str], str] = _identity) -> Outbound:
    """A reply as it is sent: text, buttons, a picture, files, in `language`."""
    out = ReplyRenderer(Translator(language), escape).reply(reply)
    return Outbound(
        out.text,
        tuple(OutButton(b.label, b.payload) for b in out.buttons),
        out.image,
        tuple(Document(sha, name) for sha, name in out.files),
    )


# one message for `Service.handle`: channel, chat id, inbound id, the message, rows to queue first
Item = tuple[str, str, str | None, Inbound, Sequence[Outbound]]
_LATER = object()  # a message of a unit an earlier message of the batch reads: in the next batch


@dataclass
class Service:
    db: Database
    clock: Callable[[], dt.datetime] = utc_now
    escapes: dict[str, Callable[[str], str]] = field(default_factory=dict)
    attempts: int = ATTEMPTS
    backoff: tuple[float, ...] = BACKOFF
    workers: int | None = None  # batches at a time for async callers (bot/dispatch.py)
    group_commit: bool = True  # async callers' messages share batches when they queue up
    max_batch: int = MAX_BATCH
    db_process: bool = False  # async callers' batches run in a child process (bot/db_process.py)
    web_url: str | None = None  # where sign-in links point (default: `DTI_WEB_URL`)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _dispatcher: Dispatcher | None = None

    @property
    def dispatcher(self) -> Dispatcher:
        with self._guard:
            if self._dispatcher is None:
                self._dispatcher = Dispatcher(self)
            return self._dispatcher

    def database_process(self) -> DatabaseProcess:
        """The child process async callers' batches run in (started on first use)."""
        return self.dispatcher.database_process()

    def _lock(self, channel: str, chat_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((channel, chat_id), threading.Lock())

    def handle(
        self,
        channel: str,
        chat_id: str,
        inbound_id: str | None,
        inbound: Inbound,
        prepend: Sequence[Outbound] = (),
        keep: list[Outbound] | None = None,
    ) -> list[int]:
        """One message, as a batch of one; returns the ids of the outbox rows it produced. `prepend`:
        channel-specific rows queued before the replies, only if the message is processed now.
        `keep`: the replies to the sender go there instead of the outbox (the web answers in its page)."""
        (outcome,) = self.handle_batch([(channel, chat_id, inbound_id, inbound, prepend)], keep)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def handle_async(
        self,
        channel: str,
        chat_id: str,
        inbound_id: str | None,
        inbound: Inbound,
        prepend: Sequence[Outbound] = (),
    ) -> list[int]:
        """`handle` for channels on an event loop, through the dispatcher (bot/dispatch.py)."""
        return await self.dispatcher.submit((channel, chat_id, inbound_id, inbound, tuple(prepend)))

    def handle_web(self, member_id: int, inbound: Inbound) -> list[Outbound]:
        """A message from the member's web workspace (a form, an upload): handled like any other, its
        replies returned for the page instead of queued; notices to others go out as usual."""
        with self.db.session() as s:
            chat_id = open_web_chat(s, member_id, self.clock())
        kept: list[Outbound] = []
        self.handle(WEB, chat_id, None, inbound, keep=kept)
        return kept

    def handle_batch(
        self, items: Sequence[Item], keep: list[Outbound] | None = None
    ) -> list[list[int] | BaseException]:
        """Several messages, all of different chats, in one transaction where they can share one; each
        gets its outbox row ids or its exception."""
        locks = [self._lock(channel, chat_id) for channel, chat_id in sorted({i[:2] for i in items})]
        for lock in locks:
            lock.acquire()
        try:
            return self._handle(list(items), keep)
        finally:
            for lock in reversed(locks):
                lock.release()

    def _handle(self, items: list[Item], keep: list[Outbound] | None) -> list[list[int] | BaseException]:
        outcomes: list[list[int] | BaseException | object] = [_LATER] * len(items)
        todo = list(range(len(items)))
        alone = len(items) == 1
        while todo:
            batch = [items[n] for n in todo]
            done = self._attempts(batch, keep) if alone else self._together(batch)
            if done is None:  # a conflict or a failure: every message on its own
                for n in todo:
                    (outcomes[n],) = self._attempts([items[n]], keep)
                return outcomes  # type: ignore[return-value]
            for n, outcome in zip(todo, done, strict=True):
                outcomes[n] = outcome
            todo = [n for n in todo if outcomes[n] is _LATER]
            alone = len(todo) == 1
        return outcomes  # type: ignore[return-value]

    def _together(self, batch: list[Item]) -> list[list[int] | BaseException | object] | None:
        """One attempt at the batch; None when it must be handled message by message."""
        try:
            return self._with_backoff(batch, None)
        except CONFLICTS as exc:
            log.info("a batch of %d messages rolled back (%r): each message alone", len(batch), exc)
            return None
        except Exception as exc:
            self._unexpected(batch, exc)
            return None

    def _attempts(
        self, batch: list[Item], keep: list[Outbound] | None
    ) -> list[list[int] | BaseException | object]:
        """A lone message, again while it conflicts with other processes."""
        for attempt in range(self.attempts):
            try:
                return self._with_backoff(batch, keep)
            except CONFLICTS as exc:
                if attempt == self.attempts - 1:
                    return [exc]
            except Unavailable as exc:
                return [exc]
            except Exception as exc:
                self._unexpected(batch, exc)
                return [exc]
        raise AssertionError("unreachable")

    def _with_backoff(
        self, batch: list[Item], keep: list[Outbound] | None
    ) -> list[list[int] | BaseException | object]:
        for attempt in range(self.attempts):
            if keep is not None:
                keep.clear()  # what an attempt that failed had rendered
            try:
                return self._once(batch, keep)
            except OperationalError as exc:  # locked, restarting, connection lost
                if attempt == self.attempts - 1:
                    return [Unavailable(str(exc)) for _ in batch]
                time.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
        raise AssertionError("unreachable")

    def _unexpected(self, batch: Sequence[Item], exc: BaseException) -> None:
        ids = [f"{i[0]}:{i[1]}:{i[2]}" for i in batch]
        log.error("handling messages %s failed: %r", ids, exc, exc_info=exc)
        UNEXPECTED.append(f"{ids}: {exc!r}")

    def _once(
        self, batch: Sequence[Item], keep: list[Outbound] | None
    ) -> list[list[int] | BaseException | object]:
        """One transaction: read, decide, render, record. `_LATER` for a message of a unit an earlier
        message reads (it goes in the next batch)."""
        now = self.clock()
        with self.db.session() as s:
            messages = [Message(i[0], i[1], i[2], _invite_code(i[3]), focus(i[3])) for i in batch]
            writes: list[Write] = []
            outcomes: list[list[int] | BaseException | object] = [_LATER] * len(batch)
            placed: list[int] = []
            for n, ((_, _, inbound_id, inbound, prepend), loaded) in enumerate(
                zip(batch, load(s, messages, resolve_framework, now), strict=True)
            ):
                if loaded is None:
                    continue
                if loaded.seen:
                    outcomes[n] = []
                    continue
                decision = step(self._offered(s, loaded, inbound, now), inbound, now)
                writes.append(
                    Write(loaded, decision, inbound_id, self._outgoing(s, loaded, decision, prepend, keep))
                )
                placed.append(n)
            for n, ids in zip(placed, write(s, writes, now), strict=True):
                outcomes[n] = ids
            return outcomes

    def _offered(self, s: Session, loaded: Loaded, inbound: Inbound, now: dt.datetime) -> Snapshot:
        """The snapshot the engine sees; a member asking for a web sign-in link is offered a fresh
        token with how many links they had in the last hour (the engine has no randomness)."""
        if not asks_for_web_link(inbound) or loaded.member_id is None:
            return loaded.snapshot
        recent = links_since(s, loaded.member_id, now - dt.timedelta(hours=1))
        offer = WebLinkOffer(secrets.token_urlsafe(32), self.web_url or web_url(), recent)
        return replace(loaded.snapshot, web_link=offer)

    def _outgoing(
        self,
        s: Session,
        loaded: Loaded,
        decision: Decision,
        prepend: Sequence[Outbound],
        keep: list[Outbound] | None,
    ) -> list[Outgoing]:
        """The replies to the chat (in its member's language, once changed) and the notices to others."""
        snap = loaded.snapshot
        joining = loaded.joining if any(isinstance(e, JoinUnit) for e in decision.events) else None
        language = snap.member.language if snap.member is not None else "vi"
        for event in decision.events:
            if isinstance(event, SetLanguage):
                language = event.language
        replies = [*prepend, *(self._render(r, language, snap.channel) for r in decision.replies)]
        out: list[Outgoing] = []
        if keep is not None:
            keep.extend(replies)
        else:  # the chat's member is set by `write` (a member joining now has no id yet)
            out = [Outgoing(snap.channel, snap.chat_id, None, m.to_json()) for m in replies]
        sender = loaded if joining is None else joining.after
        for notice in decision.notices:
            for r in recipients(s, sender, notice):
                told = self._render(notice.reply, r.language, r.channel)
                out.append(Outgoing(r.channel, r.chat_id, r.member_id, told.to_json()))
        return out

    def _render(self, reply: Reply, language: str, channel: str) -> Outbound:
        return render(reply, language, self.escapes.get(channel, _identity))

    def close(self) -> None:
        """Stop the database process and threads once every message handed over was handled. A
        message that still comes (a webhook closing after the channel) is handled on a thread."""
        with self._guard:
            dispatcher = self._dispatcher
            self.db_process = False
        if dispatcher is not None:
            dispatcher.close()
