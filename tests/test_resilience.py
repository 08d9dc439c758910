"""Resilience end to end: hostile users, redelivered updates and a flaky Zalo API, through the real channels.

The happy paths live in test_telegram.py and test_zalo.py. This file exists to show what happens when
the world is unkind, against the fake Bot API and the fake Zalo API on 127.0.0.1 (no internet), on
SQLite and PostgreSQL:

* hostile input over Telegram — a program named like a PDF, path-like file names, an empty file, a file
  over Telegram's download limit, a 100 KB message, forged button data, invite code guessing — each gets
  a clear Vietnamese message and stores nothing it should not (no file outside the evidence directory,
  no evidence row for a refused file, nothing changed in another unit);
* redelivery — every update of a short run delivered two or three times (Telegram webhook, Zalo
  webhook): each answer and each file is recorded once and the user sees each reply once;
* API faults on Zalo — 5xx answers, hanging requests and dropped connections (before Zalo recorded the
  message) on a share of sends: every message still arrives exactly once and in order per user.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlmodel import col, select

from bot.channels.telegram import make_bot
from bot.channels.telegram_app import TelegramApp
from bot.channels.zalo import ZaloConfig
from bot.channels.zalo_app import ZaloApp
from bot.outbox import Pace
from flows.model import Mode, SessionState
from scoring.model import AnswerType, Framework
from storage.db import Database
from storage.models import (
    Assessment,
    AuditLog,
    Conversation,
    Invite,
    JoinAttempt,
    Member,
    Outbox,
    Period,
)
from tests.e2e_support import Province, make_province, pdf_bytes
from tests.fake_telegram import FakeTelegram, Limits
from tests.fake_zalo import FakeZalo
from tests.test_telegram import Harness as TelegramHarness
from tests.test_zalo import seed_token

FAST = Pace(per_second=500, chat_interval=0.0)
SECRET = "resilience-secret"
HOSTILE = 556001  # the Telegram chat of Xã An Bình's respondent
NEIGHBOUR = 556002  # Xã Hòa Thành's respondent: the unit a forged button must not reach
GUESSER = 556003
DUPS = 557001  # every update delivered two or three times
SINGLE = 557002  # the same run, each update once (the reference)
DB_FILES = frozenset({"dti.db", "dti.db-journal", "dti.db-wal", "dti.db-shm"})


# -- Telegram ------------------------------------------------------------------------------------


class TelegramBot:
    """The real TelegramApp in webhook mode against the fake Bot API, any number of chats."""

    def __init__(self, fake: FakeTelegram, province: Province) -> None:
        self.fake = fake
        self.p = province
        self.app: TelegramApp | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        bot = make_bot(self.fake.token, self.fake.url, timeout=2.0)
        self.app = TelegramApp(
            self.p.db, bot, self.p.store, pace=FAST, album_wait=0.2, send_timeout=2.0, remind_every=None
        )
        self.app.service.clock = self.p.clock
        self.runner = await self.app.start_webhook("https://bot.example/tg", "/tg", "127.0.0.1", 0, SECRET)
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/tg"

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
        if self.runner is not None:
            await self.runner.cleanup()

    async def post(self, update: dict[str, Any]) -> int:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, json=update, headers=headers) as resp,
        ):
            return resp.status

    async def send(self, chat: int, update: dict[str, Any], copies: int = 1) -> str:
        """Deliver `update` `copies` times at once (Telegram retrying); the replies it caused."""
        before = len(self.fake.transcripts[chat])
        statuses = await asyncio.gather(*(self.post(update) for _ in range(copies)))
        assert statuses == [200] * copies
        await self.processed(str(update["update_id"]))
        await self.settle()
        if copies > 1:
            await asyncio.sleep(0.1)  # the other copies are handled in the background: let them finish
            await self.settle()
        return self.fake.text_of(chat, before)

    # waiting for an update to be handled and for the outbox to empty: as in the Telegram tests
    processed = TelegramHarness.processed
    settle = TelegramHarness.settle

    async def text(self, chat: int, text: str, copies: int = 1) -> str:
        return await self.send(chat, self.fake.text(chat, text), copies)

    async def press(self, chat: int, label: str, copies: int = 1) -> str:
        return await self.send(chat, self.fake.press(chat, self.fake.last_with_buttons(chat), label), copies)

    def state(self, chat: int | str) -> SessionState:
        with self.p.db.session() as s:
            conv = s.exec(select(Conversation).where(Conversation.chat_id == str(chat))).one()
            return SessionState.from_json(json.loads(conv.state_json))


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000))
    await server.start()
    yield server
    await server.stop()


def files_outside(root: Path, evidence: Path) -> set[Path]:
    """Every file under `root` except the evidence store and the SQLite database."""
    return {
        f for f in root.rglob("*") if f.is_file() and evidence not in f.parents and f.name not in DB_FILES
    }


def period_id(db: Database) -> int:
    with db.session() as s:
        pid = s.exec(select(Period.id)).one()
    assert pid is not None
    return pid


def snapshot_of(p: Province, unit: str) -> tuple[list[tuple[str, int, str | None]], list[str | None], str]:
    """What a unit has: its answer revisions, its evidence and its assessment status."""
    revisions = [(r.indicator_code, r.revision, r.value_json) for r in p.revisions(unit)]
    evidence = [e.sha256 or e.citation_number for e in p.evidence(unit)]
    with p.db.session() as s:
        statuses = [a.status for a in s.exec(select(Assessment).order_by(col(Assessment.id)))]
    return revisions, evidence, ",".join(statuses)


async def test_hostile_files_and_a_huge_message_store_nothing(
    db: Database, tmp_path: Path, telegram: FakeTelegram
) -> None:
    fake = telegram
    p = make_province(db, tmp_path)
    bot = TelegramBot(fake, p)
    await bot.start()
    try:
        async with asyncio.timeout(40):
            assert "Đã liên kết với Xã An Bình" in await bot.text(
                HOSTILE, f"/start {p.invite('25840', 'respondent')}"
            )
            await bot.text(HOSTILE, "70,4")
            assert bot.state(HOSTILE).mode is Mode.EVIDENCE
            outside = files_outside(tmp_path, p.store.root)

            # a program named like a report: refused by content, whatever the name says
            for name, blob in (
                ("bao-cao.pdf", b"\x7fELF\x02\x01\x01\x00" + bytes(300)),
                ("ke-hoach.docx", b"MZ\x90\x00\x03" + bytes(300)),
            ):
                out = await bot.send(HOSTILE, fake.document(HOSTILE, name, blob))
                assert f'Tệp "{name}" có tên như tài liệu nhưng nội dung không phải PDF' in out
            out = await bot.send(
                HOSTILE, fake.document(HOSTILE, "setup.exe", b"MZ" + bytes(300), "application/x-msdownload")
            )
            assert 'Tệp "setup.exe" không phải PDF, Word, Excel, PowerPoint hay ảnh' in out

            # empty, and over Telegram's 20 MB: refused without downloading
            out = await bot.send(HOSTILE, fake.document(HOSTILE, "rong.pdf", b""))
            assert 'Tệp "rong.pdf" trống (0 byte)' in out
            downloads = fake.calls.count("getfile")
            big = fake.document(HOSTILE, "ban-do.pdf", pdf_bytes("big"), size=20 * 1024 * 1024 + 1)
            out = await bot.send(HOSTILE, big)
            assert 'Tệp "ban-do.pdf" lớn hơn 20 MB' in out and "gõ số hiệu" in out
            assert fake.calls.count("getfile") == downloads
            assert p.evidence("25840") == []  # nothing refused became evidence
            assert [f for f in p.store.root.rglob("*") if f.is_file()] == []  # not even a temp file left

            # path-like names: accepted (the content is a PDF), shown and kept under the last component
            hostile_names = {
                "../../etc/passwd.pdf": "passwd.pdf",
                "..\\..\\x.pdf": "x.pdf",
                "/abs/path.pdf": "path.pdf",
                "./\u202egpj.pdf": "gpj.pdf",  # a right-to-left override is dropped
            }
            for n, (name, shown) in enumerate(hostile_names.items()):
                out = await bot.send(HOSTILE, fake.document(HOSTILE, name, pdf_bytes(f"path {n}")))
                assert f"Đã nhận tệp {shown} (1 KB)" in out, out
            stored = p.evidence("25840")
            assert [e.original_name for e in stored] == list(hostile_names.values())
            for e in stored:
                assert e.sha256 is not None
                path = p.store.path_for(e.sha256)
                assert path.is_file() and p.store.root in path.parents
                assert path.name == e.sha256  # a digest, never a user-supplied name
            assert files_outside(tmp_path, p.store.root) == outside
            assert not (tmp_path.parent / "x.pdf").exists() and not Path("/abs/path.pdf").exists()
            assert not (p.store.root.parent.parent / "etc" / "passwd.pdf").exists()
            on_disk = {f for f in p.store.root.rglob("*") if f.is_file()}
            assert on_disk == {p.store.path_for(e.sha256 or "") for e in stored}  # no leftovers in tmp/

            # 100 KB of text where an answer is expected: a clear reply, no answer stored, no crash
            await bot.press(HOSTILE, "Xong")
            state = bot.state(HOSTILE)
            assert state.mode is Mode.ASK and state.current == "1.2"
            revisions = p.revisions("25840")
            for huge in ("70,4 " * 20_000, "Có" + "!" * 100_000):
                out = await bot.text(HOSTILE, huge)
                assert "Câu trả lời quá dài (tối đa 300 ký tự)" in out
                assert len(out) < 4096  # the message is not echoed back
                assert p.revisions("25840") == revisions
                assert bot.state(HOSTILE).current == "1.2"
            # and 100 KB while evidence is expected: not stored as a citation or link either
            await bot.text(HOSTILE, "55")
            assert bot.state(HOSTILE).mode is Mode.EVIDENCE
            evidence = p.evidence("25840")
            out = await bot.text(HOSTILE, "x" * 100_000)
            assert out and p.evidence("25840") == evidence
            with db.session() as s:
                assert not s.exec(select(Outbox).where(Outbox.status == "failed")).all()
    finally:
        await bot.stop()


async def test_forged_buttons_change_nothing_here_or_in_another_unit(
    db: Database, tmp_path: Path, telegram: FakeTelegram
) -> None:
    fake = telegram
    p = make_province(db, tmp_path)
    bot = TelegramBot(fake, p)
    await bot.start()
    try:
        async with asyncio.timeout(40):
            await bot.text(NEIGHBOUR, f"/start {p.invite('25843', 'respondent')}")
            await bot.text(NEIGHBOUR, "55")
            await bot.press(NEIGHBOUR, "Để sau")
            await bot.text(NEIGHBOUR, "12/30")
            await bot.press(NEIGHBOUR, "Để sau")
            await bot.text(HOSTILE, f"/start {p.invite('25840', 'respondent')}")
            await bot.text(HOSTILE, "70,4")
            await bot.press(HOSTILE, "Xong")
            neighbour, here = snapshot_of(p, "25843"), snapshot_of(p, "25840")
            neighbour_state, state = bot.state(NEIGHBOUR), bot.state(HOSTILE)
            assert state.mode is Mode.ASK and state.current == "1.2" and len(neighbour[0]) == 2
            pid = period_id(db)
            last_row = _last_outbox_id(db)
            forged = [
                f"ans|{pid + 998}|1.2|yes",  # another period
                f"ans|{pid}|1.2|yes|25843",  # a unit smuggled in
                f"ans|{pid}|1.3|yes",  # an indicator that is not the open question
                f"ans|{pid}|1.2|maybe",  # a value the question does not offer
                f"sub|{pid}|-|confirm",  # submission without its confirmation step
                f"ev|{pid}|1.1|done",  # the evidence step of a closed question
                f"go|{pid}|99.9|",  # an indicator that does not exist
                f"ans|{pid}|1.2|yes" + "|" * 80,  # longer than Telegram allows
                "DROP TABLE member;--",
                "",
            ]
            for n, data in enumerate(forged):
                update = fake.press(HOSTILE, fake.transcripts[HOSTILE][-1], data=data)
                out = await bot.send(HOSTILE, update)
                if data:
                    assert "Nút này đã cũ nên không được ghi nhận" in out, (n, data, out)
                    assert "1.2. " in out  # and the open question again
            assert snapshot_of(p, "25843") == neighbour and snapshot_of(p, "25840") == here
            assert bot.state(NEIGHBOUR) == neighbour_state and bot.state(HOSTILE) == state
            with db.session() as s:
                chats = set(s.exec(select(Outbox.chat_id).where(col(Outbox.id) > last_row)))
            assert chats == {str(HOSTILE)}  # nobody else was written to
    finally:
        await bot.stop()


def _last_outbox_id(db: Database) -> int:
    with db.session() as s:
        return max(s.exec(select(Outbox.id)).all(), key=lambda i: i or 0) or 0


async def test_invite_code_guessing_is_rate_limited_and_logged(
    db: Database, tmp_path: Path, telegram: FakeTelegram
) -> None:
    fake = telegram
    p = make_province(db, tmp_path)
    code = p.invite("25840", "respondent")
    bot = TelegramBot(fake, p)
    await bot.start()
    try:
        async with asyncio.timeout(40):
            for left, guess in zip(
                range(4, -1, -1), ("ZZZZ0001", "ZZZZ0002", "ZZZZ0003", "ZZZZ0004", "ZZZZ0005"), strict=True
            ):
                out = await bot.text(GUESSER, f"/start {guess}")
                assert f'Mã mời "{guess}" không đúng' in out and f"Còn {left} lần thử trong 15 phút" in out
            out = await bot.text(GUESSER, "/start ZZZZ0006")
            assert "Bạn đã nhập sai mã quá nhiều lần. Vui lòng thử lại sau" in out
            out = await bot.text(GUESSER, f"/start {code}")  # even the right code, inside the window
            assert "Bạn đã nhập sai mã quá nhiều lần" in out and "Đã liên kết" not in out
            out = await bot.text(GUESSER, code)  # typed alone, too
            assert "Bạn đã nhập sai mã quá nhiều lần" in out
            with db.session() as s:
                assert s.exec(select(Member)).all() == []
                invite = s.exec(select(Invite).where(Invite.code == code)).first()
                assert invite is not None and invite.used_at is None
                attempts = s.exec(select(JoinAttempt).where(JoinAttempt.chat_id == str(GUESSER))).all()
                audit = s.exec(select(AuditLog).where(AuditLog.action == "member.join_failed")).all()
            # five guesses counted; the three refused while locked out are logged too, not counted
            assert len(attempts) == 5 and not any(a.ok for a in attempts)
            assert len(audit) == 8 and {a.entity_id for a in audit} == {f"telegram:{GUESSER}"}
            reasons = [
                json.loads(a.new_json or "{}")["reason"] for a in sorted(audit, key=lambda a: a.id or 0)
            ]
            assert reasons == ["unknown"] * 5 + ["rate_limited"] * 3

            # another chat is not limited by this one's guesses
            other = GUESSER + 1
            assert "Còn 4 lần thử" in await bot.text(other, "/start ZZZZ0007")

            p.clock_value += dt.timedelta(minutes=15)  # the window passes
            out = await bot.text(GUESSER, f"/start {code}")
            assert "Đã liên kết với Xã An Bình" in out
            with db.session() as s:
                invite = s.exec(select(Invite).where(Invite.code == code)).first()
                assert invite is not None and invite.used_at is not None
    finally:
        await bot.stop()


# -- redelivery ----------------------------------------------------------------------------------


@dataclass
class Step:
    kind: str  # text | press | file
    arg: str


def next_step(fw: Framework, state: SessionState, n: int, file_sent: bool) -> Step:
    """A short scripted run: typed answers and buttons, one file as evidence, the rest deferred."""
    if state.mode is Mode.EVIDENCE:
        if not file_sent:
            return Step("file", "bao-cao.pdf")
        return Step("press", "Xong") if n % 2 else Step("text", "để sau")
    assert state.current is not None
    ind = fw.indicator(state.current)
    assert ind is not None
    if ind.answer.type is AnswerType.YES_NO:
        return Step("press", "Có") if n % 2 else Step("text", "không")
    if ind.answer.type is AnswerType.PERCENTAGE:
        return Step("text", ["70,4", "12/30", "55.5 %"][n % 3])
    return Step("text", str(max(1, int(ind.max_points) // 2)))


async def walk_twice(
    bot: Any,
    fw: Framework,
    dups: Any,
    single: Any,
    rnd: random.Random,
    file_event: Callable[[Any, str], dict[str, Any]],
) -> None:
    """Ten answers, the same steps in two chats: every event to `dups` delivered two or three times,
    to `single` once; the two conversations must stay in step."""
    answers, file_sent, n = 0, False, 0
    while answers < 10:
        state = bot.state(dups)
        assert (bot.state(single).mode, bot.state(single).current) == (state.mode, state.current)
        step = next_step(fw, state, n, file_sent)
        answers += state.mode is Mode.ASK
        n += 1
        for chat, times in ((dups, rnd.choice((2, 3))), (single, 1)):
            if step.kind == "file":
                await bot.send(chat, file_event(chat, step.arg), times)
            elif step.kind == "press":
                await bot.press(chat, step.arg, times)
            else:
                await bot.text(chat, step.arg, times)
        file_sent = file_sent or step.kind == "file"


async def test_telegram_redelivered_updates_apply_once(
    db: Database, tmp_path: Path, telegram: FakeTelegram, tay_ninh: Framework
) -> None:
    fake = telegram
    p = make_province(db, tmp_path)
    rnd = random.Random(20260101)
    bot = TelegramBot(fake, p)
    await bot.start()
    try:
        async with asyncio.timeout(50):
            copies = rnd.choice((2, 3))
            await bot.text(DUPS, f"/start {p.invite('25840', 'respondent')}", copies)
            await bot.text(SINGLE, f"/start {p.invite('25843', 'respondent')}")
            await walk_twice(
                bot, tay_ninh, DUPS, SINGLE, rnd, lambda c, n: fake.document(c, n, pdf_bytes("redelivery"))
            )
            await asyncio.sleep(0.3)
            await bot.settle()

            dup, single = p.revisions("25840"), p.revisions("25843")
            assert len(dup) == 10 and [r.indicator_code for r in dup] == [r.indicator_code for r in single]
            assert all(r.revision == 1 for r in dup)  # each answer stored once, never re-saved
            assert len(p.evidence("25840")) == len(p.evidence("25843")) == 1
            said = [s.text.replace("Xã Hòa Thành", "Xã An Bình") for s in fake.transcripts[SINGLE]]
            assert [s.text for s in fake.transcripts[DUPS]] == said  # each reply seen once
            assert len(said) >= 22
            presses = [s.message_id for s in fake.transcripts[DUPS] if s.keyboard_removed]
            assert len(presses) == len(set(presses))
    finally:
        await bot.stop()


class ZaloBot:
    """The real ZaloApp against the fake Zalo API; the test drives the sender."""

    def __init__(self, fake: FakeZalo, p: Province) -> None:
        self.fake, self.p = fake, p
        config = ZaloConfig(
            app_id=fake.app_id,
            app_secret=fake.app_secret,
            signature_secret=fake.signature_secret,
            api_base=fake.url,
            oauth_base=fake.url,
        )
        self.app = ZaloApp(p.db, p.store, config, per_second=500, chat_interval=0.0, remind_every=None)

    async def start(self) -> None:
        port = await self.app.start("127.0.0.1", 0, "/zalo", background=False)
        self.fake.webhook = f"http://127.0.0.1:{port}/zalo"

    async def send(self, user: str, event: dict[str, Any], copies: int = 1) -> str:
        before = len(self.fake.transcripts[user])
        statuses = await asyncio.gather(*(self.fake.post(event) for _ in range(copies)))
        assert statuses == [200] * copies
        await self.app.channel.flush()
        await self.app.sender.drain()
        return self.fake.said(user, before)

    async def text(self, user: str, text: str, copies: int = 1) -> str:
        return await self.send(user, self.fake.text(user, text), copies)

    async def press(self, user: str, label: str, copies: int = 1) -> str:
        button = next(b for b in self.fake.last_buttons(user) if b["title"] == label)
        return await self.send(user, self.fake.press(user, button["payload"]), copies)

    def state(self, user: str) -> SessionState:
        with self.p.db.session() as s:
            conv = s.exec(select(Conversation).where(Conversation.chat_id == user)).one()
            return SessionState.from_json(json.loads(conv.state_json))


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZalo]:
    server = FakeZalo()
    await server.start()
    yield server
    await server.stop()


async def test_zalo_redelivered_events_apply_once(
    db: Database, tmp_path: Path, zalo: FakeZalo, tay_ninh: Framework
) -> None:
    fake = zalo
    dups, single = "8101001", "8101002"
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    rnd = random.Random(20260102)
    bot = ZaloBot(fake, p)
    await bot.start()
    try:
        async with asyncio.timeout(50):
            await bot.send(dups, fake.follow(dups), rnd.choice((2, 3)))
            await bot.send(single, fake.follow(single))
            await bot.text(dups, p.invite("25840", "respondent"), rnd.choice((2, 3)))
            await bot.text(single, p.invite("25843", "respondent"))
            await walk_twice(
                bot, tay_ninh, dups, single, rnd, lambda u, n: fake.file(u, n, pdf_bytes("zalo"))
            )
            dup_revisions, single_revisions = p.revisions("25840"), p.revisions("25843")
            assert len(dup_revisions) == 10
            assert [r.indicator_code for r in dup_revisions] == [r.indicator_code for r in single_revisions]
            assert all(r.revision == 1 for r in dup_revisions)
            assert len(p.evidence("25840")) == len(p.evidence("25843")) == 1
            said = [s.text.replace("Xã Hòa Thành", "Xã An Bình") for s in fake.transcripts[single]]
            assert [s.text for s in fake.transcripts[dups]] == said  # each reply seen once
            assert len(said) >= 22
    finally:
        await bot.app.stop()


# -- Zalo API faults -----------------------------------------------------------------------------

FAULTS = ("5xx", "hang", "drop")


@dataclass
class FaultyZalo(FakeZalo):
    """The fake Zalo API failing message sends BEFORE recording them: a 5xx answer, a request that hangs
    past the sender's timeout, or a connection dropped without an answer. A seeded share of all sends
    fails (`fault_share`), and/or the sends numbered in `fail_calls` (1 = the first) fail as given."""

    fault_share: float = 0.0
    hang_seconds: float = 1.0
    fault_seed: int = 11
    fail_calls: dict[int, str] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    cs_calls: int = 0
    _fault_rnd: random.Random = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fault_rnd = random.Random(self.fault_seed)

    async def _cs(self, request: web.Request) -> web.Response:
        self.cs_calls += 1
        kind = self.fail_calls.get(self.cs_calls)
        if kind is None and self.fault_share and self._fault_rnd.random() < self.fault_share:
            kind = self._fault_rnd.choice(FAULTS)
        if kind is None:
            return await super()._cs(request)
        self.faults[kind] += 1
        if kind == "5xx":
            return web.json_response({"error": -1, "message": "Service Unavailable"}, status=503)
        if kind == "hang":
            await asyncio.sleep(self.hang_seconds)
            return web.Response(status=504)
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)


def faulty_bot(fake: FaultyZalo, p: Province) -> ZaloBot:
    bot = ZaloBot(fake, p)
    bot.app.sender.send_timeout = 0.3  # a hanging request is given up quickly and retried
    bot.app.sender.backoff = (0.05,)
    bot.app.sender.max_attempts = 100
    return bot


async def deliver_everything(bot: ZaloBot, timeout: float = 40.0) -> None:
    """Run sender cycles until no row waits (retries included); `drain` stops at the first idle cycle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await bot.app.channel.flush()
        if await bot.app.sender.cycle() == 0:
            with bot.p.db.session() as s:
                left = s.exec(select(Outbox).where(col(Outbox.status).in_(("pending", "sending")))).all()
            if not left:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("outbox not delivered")


def outbox_texts(db: Database, user: str) -> list[str]:
    """What the bot meant to say to `user`, in the order it decided to say it."""
    with db.session() as s:
        rows = list(s.exec(select(Outbox).where(Outbox.chat_id == user).order_by(col(Outbox.id))))
    assert all(r.status == "sent" for r in rows), [(r.status, r.last_error) for r in rows]
    return [str(json.loads(r.payload_json)["text"]) for r in rows]


async def test_zalo_faults_deliver_every_message_exactly_once(db: Database, tmp_path: Path) -> None:
    fake = FaultyZalo(fault_share=0.3, rate_limit_share=0.05, hang_seconds=0.8)
    await fake.start()
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    bot = faulty_bot(fake, p)
    users = [f"82000{i:02d}" for i in range(5)]

    async def chat(n: int, user: str) -> None:
        script = [
            fake.follow(user),
            fake.text(user, "xin chào"),
            *(fake.text(user, f"SAIMA{n}{k:03d}") for k in range(3)),
            fake.text(user, p.invite("25840" if n % 2 else "25843", "respondent")),
            fake.text(user, "70,4"),
            fake.text(user, "để sau"),
            fake.text(user, "có"),
        ]
        for event in script:
            assert await fake.post(event) == 200
            await asyncio.sleep(0.01)

    await bot.start()
    try:
        async with asyncio.timeout(45):
            sending = asyncio.create_task(deliver_everything(bot))
            await asyncio.gather(*(chat(n, u) for n, u in enumerate(users)))
            await sending
            await deliver_everything(bot)
        for n, user in enumerate(users):
            expected = outbox_texts(db, user)
            got = [s.text for s in fake.transcripts[user]]
            assert len(got) == len(expected) >= 8
            assert got == expected, (user, got, expected)  # each exactly once, in the order written
            assert len(set(got)) == len(got) - got.count(got[0]) + 1  # only the greeting repeats
            assert any(f'Mã mời "SAIMA{n}000" không đúng' in t for t in got)
            assert any("Đã liên kết với" in t for t in got)
        assert all(fake.faults[k] for k in FAULTS), fake.faults
        assert bot.app.sender.retried >= sum(fake.faults.values()) and bot.app.sender.failed == 0
    finally:
        await bot.app.stop()
        await fake.stop()


@pytest.mark.parametrize("fault", FAULTS)
async def test_zalo_faults_keep_each_users_order(db: Database, tmp_path: Path, fault: str) -> None:
    """The first send to a user fails once (before Zalo recorded it); the three replies still arrive in
    the order they were written."""
    fake = FaultyZalo(fail_calls={1: fault}, hang_seconds=0.5)
    await fake.start()
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    bot = faulty_bot(fake, p)
    user = "8300001"
    await bot.start()
    try:
        async with asyncio.timeout(20):
            for word in ("xin chào", "SAIMA00001", "SAIMA00002"):
                assert await fake.post(fake.text(user, word)) == 200
                await bot.app.channel.flush()
            await deliver_everything(bot)
        expected = outbox_texts(db, user)
        got = [s.text for s in fake.transcripts[user]]
        assert fake.faults[fault] == 1 and sorted(got) == sorted(expected)  # once each...
        assert got == expected  # ...and in order
    finally:
        await bot.app.stop()
        await fake.stop()
