"""The Telegram channel end to end: the real aiogram Bot against the fake Bot API on 127.0.0.1.

A commune official joins by deep link and completes the Tây Ninh assessment with buttons and typed
answers, sends an album and a PDF as evidence, presses a forged button, gets a duplicated update, sees
the bot restart in the middle, asks for the score chart and submits — in polling and in webhook mode,
on SQLite and PostgreSQL. Real update shapes (edited messages, stickers, voice notes, a user blocking
the bot, oversized files) never crash it; sending keeps Telegram's pace and survives 429s and faults.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot.channels.telegram import make_bot
from bot.channels.telegram_app import TelegramApp
from bot.outbox import Pace
from flows.model import Inbound, InboundKind, Mode, SessionState
from scoring.model import AnswerType, Framework
from storage.db import Database
from storage.models import Assessment, Conversation, Member, Outbox, ProcessedInbound
from tests.e2e_support import Province, make_province, pdf_bytes, png_bytes
from tests.fake_telegram import FakeTelegram, Limits, fake_telegram_process

CHAT = 555001
FAST = Pace(per_second=500, chat_interval=0.0)


class Harness:
    """Drives one Telegram user against a running app, polling or webhook."""

    def __init__(self, fake: FakeTelegram, province: Province, mode: str, **options: Any) -> None:
        self.options = options  # more TelegramApp settings
        self.fake = fake
        self.p = province
        self.mode = mode
        self.app: TelegramApp | None = None
        self.runner: Any = None
        self.webhook_url = ""
        self.secret = "s3cret-token"
        self.pressed: list[int] = []

    async def start(self) -> TelegramApp:
        bot = make_bot(self.fake.token, self.fake.url, timeout=2.0)
        self.app = TelegramApp(
            self.p.db,
            bot,
            self.p.store,
            pace=FAST,
            album_wait=0.2,
            send_timeout=2.0,
            remind_every=None,
            **self.options,
        )
        self.app.service.clock = self.p.clock
        if self.mode == "polling":
            await self.app.start_polling()
        else:
            self.runner = await self.app.start_webhook(
                "https://bot.example/tg", "/tg", "127.0.0.1", 0, self.secret
            )
            port = self.runner.addresses[0][1]
            self.webhook_url = f"http://127.0.0.1:{port}/tg"
        return self.app

    async def stop(self) -> None:
        assert self.app is not None
        await self.app.stop()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def deliver(self, update: dict[str, Any], secret: str | None = None) -> int:
        if self.mode == "polling":
            self.fake.push(update)
            return 200
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.secret if secret is None else secret}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.webhook_url, json=update, headers=headers) as resp,
        ):
            return resp.status

    async def send(self, update: dict[str, Any], inbound_id: str | None = None) -> str:
        """Deliver an update, wait until it is handled and its replies are out; the new transcript."""
        before = len(self.fake.transcripts[CHAT])
        await self.deliver(update)
        await self.processed(inbound_id or str(update["update_id"]))
        await self.settle()
        return self.fake.text_of(CHAT, before)

    async def processed(self, inbound_id: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.p.db.session() as s:
                if s.get(ProcessedInbound, ("telegram", inbound_id)) is not None:
                    return
            await asyncio.sleep(0.01)
        raise AssertionError(f"update {inbound_id} was not processed")

    async def settle(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.p.db.session() as s:
                waiting = s.exec(
                    select(Outbox).where(
                        Outbox.channel == "telegram", Outbox.status.in_(("pending", "sending"))
                    )
                ).all()  # type: ignore[attr-defined]
            if not waiting:
                return
            assert self.app is not None
            self.app.sender.wake()
            await asyncio.sleep(0.01)
        raise AssertionError("outbox not delivered")

    async def text(self, text: str) -> str:
        return await self.send(self.fake.text(CHAT, text))

    async def press(self, label: str) -> str:
        message = self.fake.last_with_buttons(CHAT)
        self.pressed.append(message.message_id)
        return await self.send(self.fake.press(CHAT, message, label))

    def state(self) -> SessionState:
        with self.p.db.session() as s:
            conv = s.exec(select(Conversation).where(Conversation.chat_id == str(CHAT))).one()
            return SessionState.from_json(json.loads(conv.state_json))


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=["polling", "webhook"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def answer(h: Harness, fw: Framework, code: str, n: int) -> None:
    ind = fw.indicator(code)
    assert ind is not None
    if ind.answer.type is AnswerType.YES_NO:
        if n % 2:
            await h.press("Có")
        else:
            await h.text("khong")
    elif ind.answer.type is AnswerType.PERCENTAGE:
        await h.text(["70,4", "12/30", "55.5 %", "100"][n % 4])
    else:
        await h.text(str(int(ind.max_points) // 2))


async def test_full_assessment_over_telegram(
    db: Database, tmp_path: Path, fake: FakeTelegram, mode: str, tay_ninh: Framework
) -> None:
    p = make_province(db, tmp_path)
    h = Harness(fake, p, mode)
    await h.start()
    try:
        assert set(fake.commands) == {None, "en"} and [c["command"] for c in fake.commands[None]][:3] == [
            "start",
            "tieptuc",
            "xemdiem",
        ]
        code = p.invite("25840", "respondent")
        out = await h.text(f"/start {code}")  # what a deep link t.me/<bot>?start=CODE sends
        assert "Đã liên kết với Xã An Bình" in out and "Câu 1/62" in out

        # 1.1 typed; evidence: an album of three photos (one submission) and a PDF with a citation caption
        await h.text("70,4")
        parts = [fake.photo(CHAT, png_bytes() + bytes([i]), media_group="g1") for i in range(3)]
        for update in parts:
            await h.deliver(update)
        await h.processed(f"album:{CHAT}:g1")
        await h.settle()
        assert "3 tệp" in fake.last(CHAT).text and "(3 minh chứng)" in fake.last(CHAT).text
        out = await h.send(
            fake.document(
                CHAT, "bao-cao.pdf", pdf_bytes("bc"), caption="12/BC-UBND - 05/01/2026 - Báo cáo hạ tầng"
            )
        )
        # the caption says which document the file is: one evidence item, its citation read out
        assert "bao-cao.pdf" in out and "(4 minh chứng)" in out
        assert "văn bản 12/BC-UBND ngày 05/01/2026 (Báo cáo hạ tầng)" in out
        await h.press("Xong")

        # a forged button (another period) and a duplicated update change nothing
        before = h.state()
        forged = fake.press(CHAT, fake.last_with_buttons(CHAT), data="ans|999|1.2|yes")
        assert "Nút này đã cũ" in await h.send(forged)
        dup = fake.text(CHAT, "50")
        await h.send(dup)
        await h.deliver(dup)  # Telegram retried it
        await asyncio.sleep(0.3)
        await h.settle()
        revisions = p.revisions("25840")
        assert sum(1 for r in revisions if r.indicator_code == before.current) == 1

        # restart in the middle: a new process resumes exactly there
        await h.stop()
        await h.start()
        state = h.state()
        out = await h.text("/tieptuc")
        assert state.current is not None
        resumed = (
            f"Gửi minh chứng cho {state.current}:" if state.mode is Mode.EVIDENCE else f"{state.current}. "
        )
        assert resumed in out

        # the rest of the assessment, buttons and typed answers
        for n in range(300):
            state = h.state()
            if state.mode is Mode.DONE:
                break
            if state.mode is Mode.EVIDENCE:
                await h.press("Để sau" if n % 3 else "Xong")
            else:
                assert state.current is not None
                await answer(h, tay_ninh, state.current, n)
        assert "Đã trả lời đủ 62 chỉ tiêu" in fake.text_of(CHAT)
        assert {r.indicator_code for r in p.revisions("25840")} == {i.code for i in tay_ninh.indicators}

        # every pressed keyboard was removed; every press answered
        presses = [c for c in fake.calls if c == "answercallbackquery"]
        assert len(presses) == len(fake.answered_callbacks) > 20
        removed = {s.message_id for s in fake.transcripts[CHAT] if s.keyboard_removed}
        assert set(h.pressed) <= removed  # a pressed keyboard is gone: no button can be pressed twice

        # the preview as a chart picture
        await h.text("xem điểm")
        await h.press("📈 Biểu đồ")
        photo = fake.last(CHAT)
        assert photo.photo is not None and photo.photo.startswith(b"\x89PNG") and "Xã An Bình" in photo.text

        # submission: the respondent asks, the leader (also on Telegram) confirms
        await h.text("nộp")
        await h.press("Xác nhận nộp")
        leader_chat = 555002
        leader_code = p.invite("25840", "leader")
        before = len(fake.transcripts[leader_chat])
        await h.deliver(fake.text(leader_chat, f"/start@dti_test_bot {leader_code}"))
        await h.settle()
        await asyncio.sleep(0.2)
        await h.settle()
        await h.deliver(fake.text(leader_chat, "/nop@dti_test_bot"))
        await asyncio.sleep(0.3)
        await h.settle()
        leader_sent = fake.transcripts[leader_chat][before:]
        confirm = next(s for s in reversed(leader_sent) if s.buttons)
        await h.deliver(fake.press(leader_chat, confirm, "Xác nhận nộp"))
        await asyncio.sleep(0.3)
        await h.settle()
        assert "Đã nộp bản tự đánh giá của Xã An Bình" in fake.text_of(leader_chat)
        with db.session() as s:
            assert s.exec(select(Assessment)).one().status == "submitted"
        # text is HTML: user- and framework-supplied text arrived escaped, nothing was refused
        with db.session() as s:
            assert not s.exec(select(Outbox).where(Outbox.status == "failed")).all()
    finally:
        await h.stop()


async def test_webhook_checks_the_secret(db: Database, tmp_path: Path, fake: FakeTelegram) -> None:
    p = make_province(db, tmp_path)
    h = Harness(fake, p, "webhook")
    await h.start()
    try:
        assert fake.webhook["secret_token"] == h.secret and fake.webhook["url"] == "https://bot.example/tg"
        update = fake.text(CHAT, "/start AAAAAAAA")
        assert await h.deliver(update, secret="wrong") == 401
        assert await h.deliver(update, secret="") == 401
        await asyncio.sleep(0.2)
        with db.session() as s:
            assert s.get(ProcessedInbound, ("telegram", str(update["update_id"]))) is None
        assert await h.deliver(update) == 200
        with db.session() as s:  # the 200 comes once the update is stored: Telegram may forget it
            assert s.get(ProcessedInbound, ("telegram", str(update["update_id"]))) is not None
    finally:
        await h.stop()


async def test_a_webhook_album_cut_short_by_a_crash_is_handled_at_the_next_start(
    db: Database, tmp_path: Path, fake: FakeTelegram
) -> None:
    """A webhook answers album parts before the album is handled. The process dies while it waits for
    more parts; Telegram has forgotten them. The next process handles the album from what was held:
    both photos stored once as evidence, the user told, nothing left held. A live process never takes
    parts that are still young, nor its own."""
    from storage.models import HeldUpdate

    p = make_province(db, tmp_path)
    h = Harness(fake, p, "webhook", held_stale=dt.timedelta(0), held_every=0.05)
    app = await h.start()
    try:
        await h.text(f"/start {p.invite('25840', 'respondent')}")
        await h.text("70,4")
        parts = [fake.photo(CHAT, png_bytes() + bytes([i]), media_group="g2") for i in range(2)]
        for update in parts:
            assert await h.deliver(update) == 200
        assert await h.deliver(parts[1]) == 200  # Telegram retried a part: held once
        with db.session() as s:
            assert len(s.exec(select(HeldUpdate)).all()) == 2
        assert await app.channel.replay_held(dt.timedelta(hours=1)) == 0  # young: maybe still arriving
        assert await app.channel.replay_held(dt.timedelta(0)) == 0  # its own album, still collecting
        for album in app.channel._albums.values():  # the process dies before the album's wait ends
            assert album.timer is not None
            album.timer.cancel()
        app.channel._albums.clear()
        await h.stop()
        with db.session() as s:
            assert s.get(ProcessedInbound, ("telegram", f"album:{CHAT}:g2")) is None
        assert not p.evidence("25840")

        before = len(fake.transcripts[CHAT])
        await h.start()
        await h.processed(f"album:{CHAT}:g2")
        await h.settle()
        assert "2 tệp" in fake.text_of(CHAT, before) and "(2 minh chứng)" in fake.text_of(CHAT, before)
        assert len(p.evidence("25840")) == 2
        for _ in range(100):  # released right after the album is handled
            with db.session() as s:
                if not s.exec(select(HeldUpdate)).all():
                    break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("album parts still held")
        await h.stop()
        after = len(fake.transcripts[CHAT])
        await h.start()  # nothing held: nothing handled again
        await asyncio.sleep(0.4)
        await h.settle()
        assert len(p.evidence("25840")) == 2 and len(fake.transcripts[CHAT]) == after
    finally:
        await h.stop()


async def test_real_update_shapes_never_crash(db: Database, tmp_path: Path, fake: FakeTelegram) -> None:
    p = make_province(db, tmp_path)
    h = Harness(fake, p, "polling")
    await h.start()
    try:
        await h.text(f"/start {p.invite('25840', 'respondent')}")
        assert "chỉ đọc được chữ" in await h.send(fake.sticker(CHAT))
        assert "chỉ đọc được chữ" in await h.send(fake.voice(CHAT))
        assert "Tin nhắn đã sửa không được ghi nhận" in await h.send(fake.edited(CHAT, "90"))
        await h.text("80")
        big = fake.document(CHAT, "ban-do.tif", b"II*\x00", "image/tiff", size=25 * 1024 * 1024)
        assert "lớn hơn 20 MB" in await h.send(big)
        fake_pdf = fake.document(CHAT, "bao-cao.pdf", b"MZ\x90\x00" + bytes(200))
        assert "nội dung không phải PDF" in await h.send(fake_pdf)
        out = await h.send(fake.photo(CHAT, png_bytes()))
        assert "Đã nhận tệp anh-" in out
        assert len(p.evidence("25840")) == 1
        with p.store.open(p.evidence("25840")[0].sha256 or "") as fh:
            assert fh.read() == png_bytes()  # the largest size of the photo, not a thumbnail

        # the user blocks the bot: nothing more is sent to them
        await h.deliver(fake.blocked(CHAT))
        await asyncio.sleep(0.3)
        with db.session() as s:
            member = s.exec(select(Member).where(Member.chat_id == str(CHAT))).one()
            assert member.blocked_at is not None
    finally:
        await h.stop()


@pytest.mark.parametrize("faults", [0.0, 0.3])
async def test_pace_429_and_faults_deliver_everything_once_in_order(
    db: Database, tmp_path: Path, faults: float
) -> None:
    fake = FakeTelegram(
        limits=Limits(chat_interval=0.25, per_second=40, retry_after=1),
        fault_rate=faults,
        timeout_seconds=2.5,
    )
    await fake.start()
    p = make_province(db, tmp_path)
    bot = make_bot(fake.token, fake.url, timeout=1.0)
    app = TelegramApp(p.db, bot, p.store, pace=Pace(per_second=200, chat_interval=0.05), send_timeout=1.5)
    app.sender.backoff = (0.1, 0.2, 0.4)
    app.sender.max_attempts = 50
    h = Harness(fake, p, "polling")
    h.app = app
    try:
        await app.start_polling()
        chats = [600000 + i for i in range(6)]
        for chat in chats:
            for i in range(3):  # three messages each, queued at once: faster than Telegram allows
                app.service.handle(
                    "telegram", str(chat), f"burst-{chat}-{i}", Inbound(InboundKind.TEXT, text="xin chào")
                )
        await h.settle(timeout=60)
        for chat in chats:
            texts = [s.text for s in fake.transcripts[chat]]
            assert len(texts) == 3 and len(set(s.message_id for s in fake.transcripts[chat])) == 3
        if faults == 0.0:
            assert fake.too_many > 0  # the pace was too fast for the fake's limits: 429s were answered...
        assert app.sender.failed == 0  # ...and every message still went out exactly once
    finally:
        await app.stop()
        await fake.stop()


async def test_dtibot_run_telegram_process(tmp_path: Path, fake: FakeTelegram) -> None:
    """The command operators run: a real `dtibot run telegram` process polling the fake API."""
    import os
    import signal
    import subprocess
    import sys

    from storage import migrate

    url = f"sqlite:///{tmp_path / 'run.db'}"
    migrate.upgrade(url)
    db = Database(url)
    p = make_province(db, tmp_path)
    code = p.invite("25840", "respondent")
    env = {
        **os.environ,
        "DTI_DATABASE_URL": url,
        "DTI_EVIDENCE_DIR": str(tmp_path / "ev"),
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_URL": fake.url,
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dtibot"), "run", "telegram"], env=env, stderr=subprocess.PIPE
    )
    try:
        fake.push(fake.text(CHAT, f"/start {code}"))
        deadline = time.monotonic() + 90  # its start took up to 30 s on a machine loaded by the suite
        while time.monotonic() < deadline and "Câu 1/62" not in fake.text_of(CHAT):
            await asyncio.sleep(0.05)
        assert "Đã liên kết với Xã An Bình" in fake.text_of(CHAT)
        assert "Câu 1/62" in fake.text_of(CHAT)
    finally:
        proc.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(proc.wait, 30)
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        db.dispose()
    assert status == 0, err


async def test_the_bot_process_sends_due_reminders(db: Database, tmp_path: Path, fake: FakeTelegram) -> None:
    import datetime as dt

    from flows.reminders import Policy
    from storage.admin import period_by_ref

    p = make_province(db, tmp_path)
    with db.session() as s:
        period = period_by_ref(s, None)
        period.self_assessment_due = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
        always = Policy(quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0), skip_weekends=False)
        period.reminder_policy_json = json.dumps(always.to_json())
        s.add(period)
    h = Harness(fake, p, "polling")
    await h.start()
    try:
        await h.text(f"/start {p.invite('25840', 'respondent')}")
        await h.stop()
        bot = make_bot(fake.token, fake.url, timeout=2.0)
        h.app = TelegramApp(db, bot, p.store, pace=FAST, remind_every=1)  # the scheduler ticks at start
        await h.app.start_polling()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "⏰" not in fake.text_of(CHAT):
            await asyncio.sleep(0.05)
        reminder = next(s for s in fake.transcripts[CHAT] if s.text.startswith("⏰"))
        assert "Xã An Bình: còn 62 chỉ tiêu chưa trả lời" in reminder.text
        assert reminder.buttons and reminder.buttons[0]["label"] == "Trả lời câu 1.1"
        await asyncio.sleep(1.5)  # more ticks: nothing is sent twice
        assert sum(1 for s in fake.transcripts[CHAT] if s.text.startswith("⏰")) == 1
    finally:
        await h.stop()


async def test_the_fake_bot_api_in_a_process_of_its_own_serves_the_bot() -> None:
    """The update benchmark's fake Bot API, run in its own process: the real Bot downloads a document
    the user sent and answers a button, and the fake counts the calls it answered."""
    maker = FakeTelegram()
    update = maker.document(CHAT, "bao-cao.pdf", pdf_bytes("bench"))
    file_id = update["message"]["document"]["file_id"]
    with fake_telegram_process(maker.token, Limits(), maker.files) as (url, calls):
        bot = make_bot(maker.token, url, timeout=5)
        try:
            file = await bot.get_file(file_id)
            assert file.file_path is not None
            downloaded = await bot.download_file(file.file_path)
            assert downloaded is not None and downloaded.read() == pdf_bytes("bench")
            assert await bot.answer_callback_query("cb-1") is True
        finally:
            await bot.session.close()
    assert calls() == 2  # getFile and answerCallbackQuery (a download is not an API call)


async def test_an_album_handled_after_newer_messages_is_not_filed_under_another_question(
    db: Database, tmp_path: Path, fake: FakeTelegram
) -> None:
    """An album sent for 1.1 is held when the process dies; the official types on (1.2 is open now) and
    the next process handles the held album: it is not filed under 1.2, the official is asked to send
    it again."""
    p = make_province(db, tmp_path)
    h = Harness(fake, p, "webhook", held_stale=dt.timedelta(0), held_every=0.05)
    app = await h.start()
    try:
        await h.text(f"/start {p.invite('25840', 'respondent')}")
        await h.text("70,4")
        parts = [fake.photo(CHAT, png_bytes() + bytes([i]), media_group="late") for i in range(2)]
        for update in parts:
            assert await h.deliver(update) == 200
        for album in app.channel._albums.values():  # the process dies before the album's wait ends
            assert album.timer is not None
            album.timer.cancel()
        app.channel._albums.clear()
        await h.stop()
        h = Harness(fake, p, "webhook")  # the next process: a newer message first
        await h.start()
        await h.text("để sau")
        assert h.state().current == "1.2"
        before = len(fake.transcripts[CHAT])
        assert h.app is not None and await h.app.channel.replay_held(dt.timedelta(0)) == 2  # its parts
        await h.processed(f"album:{CHAT}:late")
        await h.settle()
        assert "đến chậm" in fake.text_of(CHAT, before)
        assert h.state().current == "1.2" and not p.evidence("25840")
    finally:
        await h.stop()
