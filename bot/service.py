"""The service every channel calls: one inbound message in, outbox rows out, exactly once.

Order of work for each message: skip it if its id was processed before; take the chat's lock (two
messages from one chat are handled one after the other; on PostgreSQL the conversation row is also
locked, so several processes agree); load the snapshot; let the pure engine decide; record the
decision, the rendered replies (into the outbox) and the inbound id in ONE transaction. A conflict
with another process retries the whole step on fresh data. Nothing is sent from here: channels
deliver the outbox, so a crash after the commit loses nothing and a crash before it changes nothing.

Async channels hand messages to a worker thread, or under `dtibot run` to a database process of its
own (`db_process`, bot/db_process.py: the same work on another core). When messages of different
chats queue up behind a busy worker (the deadline-day rush), the next batch takes them all: the common
ones (answers, evidence, joining by invite) are read, decided and written in one transaction (group
commit, see storage/group_commit.py), the others one by one right after it. A batch that conflicts
with another process is rolled back and every message in it handled alone, so the guarantees above
hold either way.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot import catalog
from bot.db_process import DatabaseProcess
from bot.i18n import Translator
from bot.render.reply import Rendered, ReplyRenderer
from flows import step
from flows.engine import join_code
from flows.model import Decision, Inbound, InboundKind, JoinUnit, Notice, Reply, SetLanguage
from flows.parse import ascii_int
from scoring.model import Framework
from storage import appraisal
from storage.conversations import (
    WEB,
    ConcurrentUpdate,
    InviteTaken,
    Loaded,
    already_processed,
    apply,
    load_snapshot,
    open_web_chat,
    queue_replies,
    unit_members,
)
from storage.db import Database
from storage.group_commit import Joined, Message, Write, add_members, fits, joins, load_many, write_many

log = logging.getLogger(__name__)

ATTEMPTS = 5
# Threads running the blocking database work of async channels, each one transaction (a batch of
# messages, see MAX_BATCH) at a time. SQLite has one writer, so more threads only queue on its lock and
# take the GIL from the event loop. On PostgreSQL a second thread overlapped round trips while joins
# went one by one; with joins in the batch and its writes in one pipeline it only splits the queue
# into smaller batches and contends for the GIL: one thread is about 10 % faster (measured with
# bench/update_bench.py, see bench/RESULTS.md).
WORKERS_SQLITE = 1
WORKERS_POSTGRES = 1
# With a database process (bot/db_process.py), batches handed to it at a time: the next one waits in
# its queue while it handles one, so it does not idle while a result travels back and the event loop
# forms the next batch. 1: 748 – 908/s, 2: 1 002 – 1 071/s, 3: 980/s, 4: 752/s (PostgreSQL,
# bench/update_bench.py, 1 200 officials).
IN_FLIGHT_PROCESS = 2
BACKOFF = (0.2, 0.5, 1.0, 2.0)  # seconds between attempts while the database is unreachable or locked
# Messages of different chats waiting while a worker is busy go together into one transaction (group
# commit, see storage/group_commit.py); more than this per transaction only holds locks longer.
MAX_BATCH = 32


class _NotForBatch(RuntimeError):
    """A message turned out to need more than group commit records: the batch is handled one by one."""


def _invite_code(inbound: Inbound) -> str | None:
    return join_code(inbound.text) if inbound.kind is InboundKind.TEXT else None


class Unavailable(RuntimeError):
    """The database stayed unreachable or locked through every attempt: nothing was stored, and the
    channel must tell the user to send the message again."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def resolve_framework(framework_id: str, version: str) -> Framework:
    """A period's pinned framework. A version never changes once a period uses it, so each is read
    once per process (and per `DTI_FRAMEWORKS_DIR`), not on every message."""
    return _pinned(framework_id, version, os.environ.get("DTI_FRAMEWORKS_DIR"))


@functools.lru_cache(maxsize=64)
def _pinned(framework_id: str, version: str, frameworks_dir: str | None) -> Framework:
    return catalog.framework(f"{framework_id}@{version}")


def payload_of(rendered: Rendered) -> dict[str, object]:
    payload: dict[str, object] = {
        "text": rendered.text,
        "buttons": [{"label": b.label, "payload": b.payload} for b in rendered.buttons],
    }
    if rendered.image is not None:
        payload["photo_png_b64"] = base64.b64encode(rendered.image).decode("ascii")
    if rendered.files:
        payload["documents"] = [{"sha256": sha, "name": name} for sha, name in rendered.files]
    return payload


def _identity(text: str) -> str:
    return text


def render_payload(
    reply: Reply, language: str, escape: Callable[[str], str] = _identity
) -> dict[str, object]:
    """A reply as the outbox stores it: text, buttons and an optional picture, in `language`."""
    return payload_of(ReplyRenderer(Translator(language), escape).reply(reply))


# one message for `Service.handle`: channel, chat id, inbound id, the message, rows to queue first
Item = tuple[str, str, str | None, Inbound, Sequence[dict[str, object]]]


@dataclass
class _Queued:
    """A message waiting for a worker, and where its outcome goes."""

    channel: str
    chat_id: str
    inbound_id: str | None
    inbound: Inbound
    prepend: tuple[dict[str, object], ...]
    done: asyncio.Future[list[int]]


@dataclass
class Service:
    db: Database
    clock: Callable[[], dt.datetime] = utc_now
    escapes: dict[str, Callable[[str], str]] = field(default_factory=dict)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _async_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    attempts: int = ATTEMPTS
    backoff: tuple[float, ...] = BACKOFF
    workers: int | None = None  # None: by database, WORKERS_SQLITE or WORKERS_POSTGRES
    _executor: ThreadPoolExecutor | None = None
    group_commit: bool = True  # async callers' messages share transactions when they queue up
    max_batch: int = MAX_BATCH
    _queue: deque[_Queued] = field(default_factory=deque)
    _in_flight: set[tuple[str, str]] = field(default_factory=set)
    _batches: int = 0
    # async callers' batches run in a child process (bot/db_process.py) instead of a thread
    db_process: bool = False
    _process: DatabaseProcess | None = None

    def worker_count(self) -> int:
        """Batches handled at a time: threads, or batches handed to the database process."""
        if self.db_process:
            return self.workers or IN_FLIGHT_PROCESS
        sqlite = self.db.engine.dialect.name == "sqlite"
        return self.workers or (WORKERS_SQLITE if sqlite else WORKERS_POSTGRES)

    def executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.worker_count(), thread_name_prefix="dti-db")
            return self._executor

    def _lock(self, channel: str, chat_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((channel, chat_id), threading.Lock())

    def handle(
        self,
        channel: str,
        chat_id: str,
        inbound_id: str | None,
        inbound: Inbound,
        prepend: Sequence[dict[str, object]] = (),
        keep: list[dict[str, object]] | None = None,
    ) -> list[int]:
        """Process one inbound message; returns the ids of the outbox rows it produced. `prepend`:
        channel-specific rows queued before the replies, only if the message is processed now.
        `keep`: the replies to the sender go there instead of the outbox (the web answers in its page)."""
        with self._lock(channel, chat_id):
            for attempt in range(self.attempts):
                last = attempt == self.attempts - 1
                if keep is not None:
                    keep.clear()  # what an attempt that failed had rendered
                try:
                    return self._handle_once(channel, chat_id, inbound_id, inbound, prepend, keep)
                except (ConcurrentUpdate, InviteTaken):
                    if last:
                        raise
                except OperationalError as exc:  # locked, restarting, connection lost
                    if last:
                        raise Unavailable(str(exc)) from exc
                    time.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
                except IntegrityError:
                    # a concurrent duplicate of the same inbound id, or a racing first message
                    if inbound_id is not None:
                        with self.db.session() as s:
                            if already_processed(s, channel, inbound_id):
                                return []
                    if last:
                        raise
        return []

    async def handle_async(
        self,
        channel: str,
        chat_id: str,
        inbound_id: str | None,
        inbound: Inbound,
        prepend: Sequence[dict[str, object]] = (),
    ) -> list[int]:
        """`handle` for channels on an event loop: the database work runs on the worker threads, and
        messages of different chats that queue up while the workers are busy share a transaction."""
        key = (channel, chat_id)
        lock = self._async_locks.setdefault(key, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            if not self.group_commit:
                work = functools.partial(self.handle, channel, chat_id, inbound_id, inbound, prepend)
                return await loop.run_in_executor(self.executor(), work)
            queued = _Queued(channel, chat_id, inbound_id, inbound, tuple(prepend), loop.create_future())
            self._queue.append(queued)
            self._start_batches(loop)
            return await queued.done

    def _start_batches(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand queued messages to idle workers, each a batch of different chats not in flight."""
        while self._queue and self._batches < self.worker_count():
            batch: list[_Queued] = []
            waiting: deque[_Queued] = deque()
            keys: set[tuple[str, str]] = set()
            for queued in self._queue:
                key = (queued.channel, queued.chat_id)
                if len(batch) < self.max_batch and key not in keys and key not in self._in_flight:
                    batch.append(queued)
                    keys.add(key)
                else:
                    waiting.append(queued)
            if not batch:
                return
            self._queue = waiting
            self._in_flight |= keys
            self._batches += 1
            items = [(q.channel, q.chat_id, q.inbound_id, q.inbound, q.prepend) for q in batch]
            running: asyncio.Future[list[list[int] | BaseException]]
            if self.db_process:
                running = loop.create_task(self._batch_in_process(items))
            else:
                running = loop.run_in_executor(self.executor(), self.handle_batch, items)
            running.add_done_callback(functools.partial(self._batch_done, loop, batch, keys))

    def _batch_done(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Queued],
        keys: set[tuple[str, str]],
        running: asyncio.Future[list[list[int] | BaseException]],
    ) -> None:
        self._batches -= 1
        self._in_flight -= keys
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
                self._process = DatabaseProcess.of(self)
            return self._process

    async def _batch_in_process(self, items: Sequence[Item]) -> list[list[int] | BaseException]:
        try:
            return await self.database_process().handle_batch(items, self.attempts)
        except BrokenProcessPool as exc:
            return [Unavailable(f"the database process kept dying: {exc!r}") for _ in items]

    def close(self) -> None:
        """Stop the database process and threads once every message handed over was handled. A
        message that still comes (a webhook closing after the channel) is handled on a thread."""
        with self._guard:
            process, self._process = self._process, None
            executor, self._executor = self._executor, None
            self.db_process = False
        if process is not None:
            process.close()
        if executor is not None:
            executor.shutdown(wait=True)

    def handle_batch(self, items: Sequence[Item]) -> list[list[int] | BaseException]:
        """`handle` for several messages, all of different chats: in one transaction where they fit
        (storage/group_commit.py), the rest one by one afterwards, in order. Each message gets its
        outbox row ids or the exception `handle` would have raised for it.

        A message alone takes the same path on PostgreSQL (four round trips against about nine one by
        one: 9,3 against 10,5 ms of the database thread, measured alternating in the update bench) but
        not on SQLite, which has no round trips and fewer statements one by one (3,0 against 3,7 ms)."""
        locks = [self._lock(channel, chat_id) for channel, chat_id in sorted({i[:2] for i in items})]
        for lock in locks:
            lock.acquire()
        try:
            alone = len(items) == 1 and self.db.engine.dialect.name == "sqlite"
            together = [None] if alone else self._batch_with_retries(items)
        finally:
            for lock in reversed(locks):
                lock.release()
        outcomes: list[list[int] | BaseException] = []
        for item, outcome in zip(items, together, strict=True):
            if outcome is None:
                try:
                    outcome = self.handle(*item)
                except Exception as exc:  # this message's failure is its own
                    outcome = exc
            outcomes.append(outcome)
        return outcomes

    def _batch_with_retries(self, items: Sequence[Item]) -> list[list[int] | BaseException | None]:
        for attempt in range(self.attempts):
            try:
                return list(self._batch_once(items))
            except OperationalError as exc:  # locked, restarting, connection lost
                if attempt == self.attempts - 1:
                    return [Unavailable(str(exc)) for _ in items]
                time.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
            except Exception as exc:  # a conflict or anything odd: every message alone, as `handle` would
                log.debug("group commit of %d messages rolled back (%r); one by one", len(items), exc)
                break
        return [None] * len(items)

    def _batch_once(self, items: Sequence[Item]) -> list[list[int] | None]:
        """One transaction for the messages that fit; None for the others (nothing written for them)."""
        now = self.clock()
        outcomes: list[list[int] | None] = [None] * len(items)
        with self.db.session() as s:
            messages = [Message(i[0], i[1], i[2], _invite_code(i[3])) for i in items]
            writes: list[tuple[int, Write]] = []
            joining: list[tuple[int, Loaded, Decision]] = []
            for n, ((channel, _, inbound_id, inbound, prepend), loaded) in enumerate(
                zip(items, load_many(s, messages, resolve_framework, now), strict=True)
            ):
                if loaded is None:
                    continue
                if loaded.seen:
                    outcomes[n] = []
                    continue
                decision = step(loaded.snapshot, inbound, now)
                if loaded.joining is not None:
                    if joins(loaded, decision):
                        joining.append((n, loaded, decision))
                    continue
                if not fits(loaded, decision):
                    continue
                language = loaded.snapshot.member.language if loaded.snapshot.member else "vi"
                payloads = [*prepend, *(self._render(r, language, channel) for r in decision.replies)]
                writes.append((n, Write(loaded, decision, inbound_id, payloads)))
            if joining:
                writes += self._joined(s, items, joining, now)
                writes.sort(key=lambda w: w[0])
            written = write_many(s, [w for _, w in writes], now)
            for (n, _), ids in zip(writes, written, strict=True):
                outcomes[n] = ids
        return outcomes

    def _joined(
        self, s: Session, items: Sequence[Item], joining: list[tuple[int, Loaded, Decision]], now: dt.datetime
    ) -> list[tuple[int, Write]]:
        """Chats joining in the batch: their members added, then each asked its first question, as
        `_handle_once` does after a join."""
        writes: list[tuple[int, Write]] = []
        member_ids = add_members(s, [loaded for _, loaded, _ in joining], now)
        for (n, before, decision), member_id in zip(joining, member_ids, strict=True):
            channel, chat_id, inbound_id, _, prepend = items[n]
            assert before.joining is not None
            version = (before.version or 0) + 1  # the join wrote the dialogue state once
            joined = before.joining.loaded(channel, chat_id, decision.session, version, member_id)
            follow = step(joined.snapshot, Inbound(InboundKind.RESUME), now)
            if not fits(joined, follow):
                raise _NotForBatch(f"{channel}:{chat_id}: the question after joining writes more")
            replies = (*decision.replies, *follow.replies)
            payloads = [*prepend, *(self._render(r, "vi", channel) for r in replies)]
            writes.append((n, Write(joined, follow, inbound_id, payloads, Joined(before, member_id))))
        return writes

    def _handle_once(
        self,
        channel: str,
        chat_id: str,
        inbound_id: str | None,
        inbound: Inbound,
        prepend: Sequence[dict[str, object]],
        keep: list[dict[str, object]] | None = None,
    ) -> list[int]:
        now = self.clock()
        with self.db.session() as s:
            code = _invite_code(inbound)
            focus = ascii_int(inbound.field("unit")) if inbound.kind is InboundKind.FORM else None
            loaded = load_snapshot(s, channel, chat_id, resolve_framework, now, code, inbound_id, focus)
            if loaded.seen:
                return []
            decision = step(loaded.snapshot, inbound, now)
            member_id = apply(s, loaded, decision, now, inbound_id)
            replies = list(decision.replies)
            language = loaded.snapshot.member.language if loaded.snapshot.member else "vi"
            for event in decision.events:
                if isinstance(event, SetLanguage):
                    language = event.language
            if decision.then_resume or any(isinstance(e, JoinUnit) for e in decision.events):
                joined = load_snapshot(s, channel, chat_id, resolve_framework, now)
                follow = step(joined.snapshot, Inbound(InboundKind.RESUME), now)
                apply(s, joined, follow, now, None)
                replies += follow.replies
                loaded = joined
            payloads = [*prepend, *(self._render(r, language, channel) for r in replies)]
            ids: list[int] = []
            if keep is not None:
                keep.extend(payloads)
            else:
                ids = queue_replies(s, channel, chat_id, member_id, payloads, now)
            ids += self._notify(s, loaded, decision.notices, now)
            return ids

    def handle_web(self, member_id: int, inbound: Inbound) -> list[dict[str, object]]:
        """A message from the member's web workspace (a form, an upload): handled like any other, its
        replies returned for the page instead of queued; notices to others go out as usual."""
        with self.db.session() as s:
            chat_id = open_web_chat(s, member_id, self.clock())
        kept: list[dict[str, object]] = []
        self.handle(WEB, chat_id, None, inbound, keep=kept)
        return kept

    def _render(self, reply: Reply, language: str, channel: str) -> dict[str, object]:
        return render_payload(reply, language, self.escapes.get(channel, _identity))

    def _notify(self, s: Session, loaded: Loaded, notices: tuple[Notice, ...], now: dt.datetime) -> list[int]:
        """Replies for the unit's other members holding a role (a leader asked to confirm, say)."""
        ids: list[int] = []
        for notice in notices:
            if notice.reviewers:
                recipients = appraisal.reviewers_of(s, loaded.unit_id) if loaded.unit_id is not None else []
            else:
                unit_id = notice.unit_id if notice.unit_id is not None else loaded.unit_id
                recipients = unit_members(s, unit_id, notice.role) if unit_id is not None else []
            for member in recipients:
                if member.id == loaded.member_id:
                    continue
                ids += queue_replies(
                    s,
                    member.channel,
                    member.chat_id,
                    member.id,
                    [self._render(notice.reply, member.language, member.channel)],
                    now,
                )
        return ids
