"""The Zalo OA channel end to end against the fake Zalo API, on SQLite and PostgreSQL: a full Tây Ninh
assessment with typed answers, button payloads, an image and a PDF as evidence; forged, stale and replayed
webhooks changing nothing; a token refresh in the middle; a refused refresh token raising the alert; a
reminder outside the free-reply window taking the template path, or recorded as not deliverable."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.channels.zalo import ZaloConfig
from bot.channels.zalo_app import ZaloApp
from flows.model import Mode, SessionState
from scoring.model import AnswerType, Framework
from storage.db import Database
from storage.models import Contact, Conversation, Outbox, ProcessedInbound, ZaloToken
from storage.zalo import save_token
from tests.e2e_support import Province, make_province, pdf_bytes, png_bytes
from tests.fake_zalo import FakeZalo

USER = "8001000"


class Harness:
    def __init__(self, fake: FakeZalo, p: Province, template: str | None = None) -> None:
        self.fake, self.p = fake, p
        config = ZaloConfig(
            app_id=fake.app_id,
            app_secret=fake.app_secret,
            signature_secret=fake.signature_secret,
            api_base=fake.url,
            oauth_base=fake.url,
            template_id=template,
        )
        self.app = ZaloApp(p.db, p.store, config, per_second=500, chat_interval=0.0, remind_every=None)

    async def start(self) -> None:
        port = await self.app.start("127.0.0.1", 0, "/zalo", background=False)
        self.fake.webhook = f"http://127.0.0.1:{port}/zalo"

    async def send(self, event: dict[str, object]) -> str:
        before = len(self.fake.transcripts[USER])
        assert await self.fake.post(event) == 200
        await self.app.channel.flush()
        await self.app.sender.drain()
        return self.fake.said(USER, before)

    async def text(self, text: str) -> str:
        return await self.send(self.fake.text(USER, text))

    async def press(self, label: str) -> str:
        button = next(b for b in self.fake.last_buttons(USER) if b["title"] == label)
        return await self.send(self.fake.press(USER, button["payload"]))

    def state(self) -> SessionState:
        with self.p.db.session() as s:
            conv = s.exec(select(Conversation).where(Conversation.chat_id == USER)).one()
            return SessionState.from_json(json.loads(conv.state_json))


@pytest.fixture
async def fake() -> AsyncIterator[FakeZalo]:
    server = FakeZalo()
    await server.start()
    yield server
    await server.stop()


def seed_token(p: Province, fake: FakeZalo, expires_in: dt.timedelta = dt.timedelta(hours=20)) -> None:
    with p.db.session() as s:
        now = dt.datetime.now(dt.UTC)
        save_token(s, fake.access_token, fake.refresh_token, now + expires_in, now)


async def test_a_full_assessment_over_zalo(
    db: Database, tmp_path: Path, fake: FakeZalo, tay_ninh: Framework
) -> None:
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    await h.start()
    try:
        assert "mã mời" in await h.send(fake.follow(USER))
        out = await h.text(p.invite("25840", "respondent"))  # the code typed alone
        assert "Đã liên kết với Xã An Bình" in out and "Câu 1/62" in out
        await h.text("70,4")
        out = await h.send(fake.image(USER, png_bytes(), "anh-chup.jpg"))
        assert "Đã nhận tệp anh-" in out  # Zalo sends photos without a name
        out = await h.send(fake.file(USER, "bao-cao.pdf", pdf_bytes("bc")))
        assert "(2 minh chứng)" in out
        await h.press("Xong")
        # the same event delivered again is applied once
        dup = fake.text(USER, "50")
        await h.send(dup)
        await h.send(dup)
        assert sum(1 for r in p.revisions("25840") if r.indicator_code == "1.2") == 1
        # a token refresh in the middle of the conversation: Zalo no longer takes the old token
        fake.access_token = "AT-rotated-by-zalo"
        out = await h.text("để sau")
        assert fake.refreshes == 1 and "1.3" in out
        with db.session() as s:
            row = s.exec(select(ZaloToken)).one()
        assert (
            row.access_token == fake.access_token and row.refresh_token == fake.refresh_token
        )  # stored first
        # the rest, with typed answers and button payloads ("#2" typed works as well as pressing)
        for n in range(300):
            state = h.state()
            if state.mode is Mode.DONE:
                break
            if state.mode is Mode.EVIDENCE:
                await h.text("#2" if n % 2 else "để sau")
                continue
            assert state.current is not None
            ind = tay_ninh.indicator(state.current)
            assert ind is not None
            if ind.answer.type is AnswerType.YES_NO:
                await (h.press("Có") if n % 2 else h.text("khong"))
            elif ind.answer.type is AnswerType.PERCENTAGE:
                await h.text("12/30")
            else:
                await h.text("5")
        assert {r.indicator_code for r in p.revisions("25840")} == {i.code for i in tay_ninh.indicators}
        assert "Đã trả lời đủ 62 chỉ tiêu" in fake.said(USER)
        out = await h.send(fake.sticker(USER))
        assert "chỉ đọc được chữ" in out
        out = await h.text("xem điểm")
        await h.press("📈 Biểu đồ")
        image = next(s for s in reversed(fake.transcripts[USER]) if s.kind == "image")
        assert image.data.startswith(b"\x89PNG")
        with db.session() as s:
            assert not s.exec(select(Outbox).where(Outbox.status == "failed")).all()
    finally:
        await h.app.stop()


async def test_forged_stale_and_replayed_webhooks_change_nothing(
    db: Database, tmp_path: Path, fake: FakeZalo
) -> None:
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    await h.start()
    try:
        event = fake.text(USER, p.invite("25840", "respondent"))
        assert await fake.post(event, signature="mac=" + "0" * 64) == 401
        stale = fake.text(USER, "xin chào")
        stale["timestamp"] = str(int((time.time() - 3600) * 1000))
        assert await fake.post(stale) == 401
        await asyncio.sleep(0.2)
        with db.session() as s:
            assert s.exec(select(ProcessedInbound)).all() == []
        started = time.monotonic()
        assert await fake.post(event) == 200
        assert time.monotonic() - started < 2.0  # answered at once
        await h.app.channel.flush()
        assert await fake.post(event) == 200  # Zalo retries
        await h.app.channel.flush()
        with db.session() as s:
            assert len(s.exec(select(ProcessedInbound)).all()) == 1
    finally:
        await h.app.stop()


async def test_a_refused_refresh_token_raises_the_alert_and_keeps_messages(
    db: Database, tmp_path: Path, fake: FakeZalo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from bot.cli import main

    p = make_province(db, tmp_path)
    seed_token(p, fake, expires_in=dt.timedelta(minutes=10))  # about to expire: refreshed before use
    fake.refuse_refresh = True
    h = Harness(fake, p)
    await h.start()
    try:
        assert await fake.post(fake.follow(USER)) == 200
        await h.app.channel.flush()
        await h.app.sender.cycle()
        with db.session() as s:
            row = s.exec(select(ZaloToken)).one()
            waiting = s.exec(select(Outbox).where(Outbox.status == "pending")).all()
        assert row.failed_at is not None and "Invalid refresh token" in (row.error or "")
        assert len(waiting) == 1  # not dropped: it waits for the re-authorisation
        monkeypatch.setenv("DTI_DATABASE_URL", db.url)
        out, err = io.StringIO(), io.StringIO()
        assert main(["zalo", "status"], out, err) == 2
        assert "Zalo đã từ chối mã làm mới" in out.getvalue() and "dtibot zalo token" in out.getvalue()
        monkeypatch.setenv("ZALO_ACCESS_TOKEN", "AT-new")
        monkeypatch.setenv("ZALO_REFRESH_TOKEN", "RT-new")
        assert main(["zalo", "token"], out, err) == 0
        fake.access_token, fake.refuse_refresh = "AT-new", False
        with db.session() as s:
            for o in s.exec(select(Outbox)):  # skip the backoff wait
                o.not_before = None
                s.add(o)
        await h.app.sender.drain()
        assert "mã mời" in fake.said(USER)
    finally:
        await h.app.stop()


@pytest.mark.parametrize("template", ["zns-1234", None])
async def test_a_reminder_outside_the_window(
    db: Database, tmp_path: Path, fake: FakeZalo, template: str | None
) -> None:
    from bot.scheduler import ReminderScheduler
    from flows.reminders import Policy
    from storage.admin import period_by_ref

    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p, template=template)
    await h.start()
    try:
        await h.send(fake.text(USER, p.invite("25840", "respondent")))
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=9)
        fake.last_inbound[USER] = long_ago
        with db.session() as s:
            contact = s.get(Contact, ("zalo", USER))
            assert contact is not None
            contact.last_inbound_at = long_ago
            s.add(contact)
            period = period_by_ref(s, None)
            period.self_assessment_due = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
            always = Policy(quiet_start=dt.time(0, 0), quiet_end=dt.time(0, 0), skip_weekends=False)
            period.reminder_policy_json = json.dumps(always.to_json())
            s.add(period)
        assert len(ReminderScheduler(db).tick()) == 1
        await h.app.sender.drain()
        with db.session() as s:
            reminder_row = s.exec(select(Outbox).where(Outbox.priority == 10)).one()
        if template:
            sent = fake.transcripts[USER][-1]
            assert (
                sent.kind == "template" and "còn 62 chỉ tiêu chưa trả lời" in json.loads(sent.text)["content"]
            )
            assert reminder_row.status == "sent"
        else:
            assert reminder_row.status == "failed" and "not deliverable" in (reminder_row.last_error or "")
            from storage.reminders import ledger_stats

            with db.session() as s:
                stats = ledger_stats(s, period.id or 0)
            assert sum(v.undeliverable for v in stats.values()) == 1  # shows in the admin status
    finally:
        await h.app.stop()


async def test_rate_limits_are_retried_until_delivered(db: Database, tmp_path: Path, fake: FakeZalo) -> None:
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    h.app.sender.backoff = (0.05,)
    await h.start()
    try:
        fake.rate_limit_share = 0.5
        for word in ("xin chào", "chào bạn", "tôi cần giúp"):
            assert await fake.post(fake.text(USER, word)) == 200
        await h.app.channel.flush()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await h.app.sender.cycle()
            with db.session() as s:
                left = s.exec(select(Outbox).where(col(Outbox.status).in_(("pending", "sending")))).all()
            if not left:
                break
            await asyncio.sleep(1.05)
        assert fake.rate_limited > 0 and len(fake.transcripts[USER]) == 3
    finally:
        await h.app.stop()


async def test_a_long_message_cut_short_by_a_rate_limit_is_finished_not_repeated(
    db: Database, tmp_path: Path, fake: FakeZalo
) -> None:
    """Zalo takes 2,000 characters a message: a longer text goes in pieces, its buttons with the last.
    The second piece is refused (rate limit); the retry sends it and the last, never the first again."""
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    h.app.sender.backoff = (0.0,)
    await h.start()
    try:
        await h.text("xin chào")  # opens the window for free replies
        before = len(fake.transcripts[USER])
        pieces = ["một " * 450, "hai " * 450, "ba " * 450]  # about 1,800 characters each
        buttons = [{"label": "Có", "payload": "yes"}, {"label": "Không", "payload": "no"}]
        with db.session() as s:
            s.add(
                Outbox(
                    channel="zalo",
                    chat_id=USER,
                    payload_json=json.dumps(
                        {"text": "\n".join(pieces), "buttons": buttons}, ensure_ascii=False
                    ),
                )
            )
        fake.scripted_faults = [None, "rate"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(fake.transcripts[USER]) < before + 3:
            await h.app.sender.cycle()
            await asyncio.sleep(1.05)  # a 429 holds the chat back for a second
        sent = fake.transcripts[USER][before:]
        assert fake.rate_limited == 1
        assert [m.text for m in sent] == pieces  # each piece once, in order
        assert [b["title"] for b in sent[-1].buttons] == ["Có", "Không"] and not sent[0].buttons
    finally:
        await h.app.stop()


async def test_an_event_answered_but_not_handled_before_a_crash_is_handled_later(
    db: Database, tmp_path: Path, fake: FakeZalo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zalo gets its answer before the event is handled. The process dies in between: the event stays
    held, a live process handles it once it is stale (not before, and never one it holds itself), the
    user gets the reply, and nothing is left held or handled twice."""
    from storage.models import HeldUpdate

    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    await h.start()
    code = p.invite("25840", "respondent")
    stuck = asyncio.Event()

    async def dies(event: dict[str, object]) -> bool:  # the process is killed while handling it
        await stuck.wait()
        return True

    h.app.channel.process = dies  # type: ignore[method-assign]
    event = fake.text(USER, code)
    assert await fake.post(event) == 200
    assert await fake.post(event) == 200  # Zalo delivered it again: held once
    with db.session() as s:
        assert len(s.exec(select(HeldUpdate)).all()) == 1
    assert await h.app.channel.replay_held(dt.timedelta(0)) == 0  # its own, still in hand
    dying = list(h.app.channel._tasks)
    for task in dying:
        task.cancel()
    await asyncio.gather(*dying, return_exceptions=True)
    await h.app.stop()
    assert not fake.transcripts[USER]
    import io

    from bot.cli import main

    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    out, err = io.StringIO(), io.StringIO()
    assert main(["zalo", "status"], out, err) == 0
    assert "Sự kiện Zalo đã nhận nhưng chưa xử lý xong: 1 (cũ nhất lúc " in out.getvalue()  # operators see it

    h = Harness(fake, p)
    await h.start()
    try:
        assert await h.app.channel.replay_held(dt.timedelta(hours=1)) == 0  # young: maybe in hand elsewhere
        assert await h.app.channel.replay_held(dt.timedelta(0)) == 1
        await h.app.channel.flush()
        await h.app.sender.drain()
        assert "Đã liên kết với Xã An Bình" in fake.said(USER)
        with db.session() as s:
            assert not s.exec(select(HeldUpdate)).all()
            assert s.get(ProcessedInbound, ("zalo", str(event["message"]["msg_id"]))) is not None  # type: ignore[index]
        out = io.StringIO()
        assert main(["zalo", "status"], out, err) == 0
        assert "chưa xử lý xong" not in out.getvalue()
        before = len(fake.transcripts[USER])
        assert await h.app.channel.replay_held(dt.timedelta(0)) == 0
        assert await fake.post(event) == 200  # delivered once more after all that: applied once
        await h.app.channel.flush()
        await h.app.sender.drain()
        assert len(fake.transcripts[USER]) == before
    finally:
        await h.app.stop()


async def test_an_event_that_cannot_be_held_is_still_handled(
    db: Database, tmp_path: Path, fake: FakeZalo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holding the event fails (the database stumbled for a moment): Zalo still gets its answer and
    the event is handled as before holding existed, with the service's retries."""
    from sqlalchemy.exc import OperationalError

    from storage.models import HeldUpdate

    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    await h.start()
    try:

        def unavailable(rows: list[tuple[str, str, str]]) -> None:
            raise OperationalError("INSERT", {}, Exception("the database system is starting up"))

        monkeypatch.setattr(h.app.channel.held, "_hold", unavailable)
        assert "Đã liên kết với Xã An Bình" in await h.text(p.invite("25840", "respondent"))
        with db.session() as s:
            assert not s.exec(select(HeldUpdate)).all()
    finally:
        await h.app.stop()


async def test_links_expired_files_long_keyboards_and_unfollow(
    db: Database, tmp_path: Path, fake: FakeZalo
) -> None:
    import re

    from storage.models import Member

    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    await h.start()
    try:
        await h.text(p.invite("25840", "respondent"))
        await h.text("70,4")
        out = await h.send(fake.image(USER, png_bytes(), "photo.jpg"))
        assert re.search(r"Đã nhận tệp anh-\d{8}-\d{6}\.png", out)  # named by when it arrived, and its type
        expired = fake.file(USER, "het-han.pdf", pdf_bytes("x"))
        del fake.files["het-han.pdf"]  # Zalo's link expired before we fetched it
        out = await h.send(expired)
        assert 'Không tải được tệp "het-han.pdf"' in out and "gửi lại" in out
        out = await h.send(fake.link(USER, "https://tayninh.gov.vn/van-ban/123"))
        assert "https://tayninh.gov.vn/van-ban/123" in out  # a shared link is a cited source
        assert "(2 minh chứng)" in out
        # a keyboard longer than Zalo's five buttons: the rest are offered as "#6", "#7"
        with db.session() as s:
            member = s.exec(select(Member)).first()
            buttons = [{"label": f"Mục {n}", "payload": f"pick:{n}"} for n in range(1, 8)]
            s.add(
                Outbox(
                    channel="zalo",
                    chat_id=USER,
                    member_id=member.id if member else None,
                    payload_json=json.dumps({"text": "Chọn một mục", "buttons": buttons}),
                )
            )
        await h.app.sender.drain()
        sent = fake.transcripts[USER][-1]
        assert len(sent.buttons) == 5 and "#6 Mục 6" in sent.text and "#7 Mục 7" in sent.text
        inbound = await h.app.channel._inbound("user_send_text", USER, {"text": "#7"})
        assert inbound is not None and inbound.payload == "pick:7"
        # unfollow: what waits for the user is not sent; following again resumes
        assert await fake.post(fake.event(USER, "unfollow")) == 200
        await h.app.channel.flush()
        with db.session() as s:
            contact = s.get(Contact, ("zalo", USER))
            assert contact is not None and not contact.following
        before = len(fake.transcripts[USER])
        out = await h.send(fake.follow(USER))
        assert len(fake.transcripts[USER]) > before and "1.1" in out
    finally:
        await h.app.stop()


async def test_dtibot_run_zalo_process(tmp_path: Path, fake: FakeZalo) -> None:
    """The command operators run: a real `dtibot run zalo` process, the fake Zalo posting to it."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from storage import migrate

    url = f"sqlite:///{tmp_path / 'run.db'}"
    migrate.upgrade(url)
    db = Database(url)
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    code = p.invite("25840", "respondent")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "DTI_DATABASE_URL": url,
        "DTI_EVIDENCE_DIR": str(tmp_path / "ev"),
        "ZALO_APP_ID": fake.app_id,
        "ZALO_APP_SECRET": fake.app_secret,
        "ZALO_SIGNATURE_SECRET": fake.signature_secret,
        "ZALO_API_URL": fake.url,
        "ZALO_OAUTH_URL": fake.url,
    }
    command = [
        str(Path(sys.executable).parent / "dtibot"),
        "run",
        "zalo",
        "--port",
        str(port),
        "--path",
        "/z",
    ]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    fake.webhook = f"http://127.0.0.1:{port}/z"
    try:
        deadline = time.monotonic() + 30
        while True:  # until the server listens
            try:
                assert await fake.post(fake.text(USER, code)) == 200
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                await asyncio.sleep(0.1)
        while time.monotonic() < deadline and "Câu 1/62" not in fake.said(USER):
            await asyncio.sleep(0.05)
        assert "Đã liên kết với Xã An Bình" in fake.said(USER) and "Câu 1/62" in fake.said(USER)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        proc.stderr.close()
        db.dispose()


async def test_two_processes_refreshing_at_once_spend_the_refresh_token_once(
    db: Database, tmp_path: Path, fake: FakeZalo
) -> None:
    """Zalo's refresh tokens are single use: two bot processes that both find the token about to expire
    must not both exchange it (the second would be refused and the OA locked out)."""
    from bot.channels.zalo import TokenManager

    p = make_province(db, tmp_path)
    seed_token(p, fake, expires_in=dt.timedelta(minutes=10))
    fake.oauth_delay = 0.5
    config = Harness(fake, p).app.config
    other = Database(db.url)  # its own connections, as another process has
    try:
        first, second = TokenManager(db, config), TokenManager(other, config)
        tokens = await asyncio.gather(first.access_token(), second.access_token())
        assert fake.refreshes == 1 and tokens[0] == tokens[1] == fake.access_token
        with db.session() as s:
            row = s.exec(select(ZaloToken)).one()
        assert row.failed_at is None and row.refresh_token == fake.refresh_token
    finally:
        other.dispose()


async def test_a_users_events_are_handled_in_the_order_they_arrived(
    db: Database, tmp_path: Path, fake: FakeZalo
) -> None:
    """A photo still downloading is not overtaken by the "later" typed right after it: the photo is
    evidence for 1.1, and only then does the walk move on."""
    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    await h.start()
    try:
        await h.text(p.invite("25840", "respondent"))
        await h.text("70,4")
        fake.file_delay = 0.5
        before = len(fake.transcripts[USER])
        assert await fake.post(fake.image(USER, png_bytes(), "slow.jpg")) == 200
        assert await fake.post(fake.text(USER, "để sau")) == 200
        await h.app.channel.flush()
        await h.app.sender.drain()
        said = fake.said(USER, before)
        assert said.index("Đã nhận tệp") < said.index("1.2")
        assert h.state().current == "1.2"
    finally:
        await h.app.stop()


async def test_a_held_event_replayed_after_newer_ones_is_never_filed_under_another_question(
    db: Database, tmp_path: Path, fake: FakeZalo
) -> None:
    """A PDF for 1.1 is held (the database was down when it came) while the official goes on to 1.2; when
    a live process replays it, it is not filed under 1.2: the official is asked to send it again."""
    from bot.channels.zalo import event_id
    from storage.held import hold
    from storage.models import Evidence

    p = make_province(db, tmp_path)
    seed_token(p, fake)
    h = Harness(fake, p)
    await h.start()
    try:
        await h.text(p.invite("25840", "respondent"))
        await h.text("70,4")
        assert h.state().mode is Mode.EVIDENCE and h.state().current == "1.1"
        pdf = fake.file(USER, "bao-cao-1.1.pdf", pdf_bytes("cho 1.1"))
        with db.session() as s:  # held by a process that could not handle it
            hold(s, "zalo", [(event_id(pdf), USER, json.dumps(pdf))], dt.datetime.now(dt.UTC))
        newer = fake.text(USER, "để sau")
        newer["timestamp"] = str(int(pdf["timestamp"]) + 1000)
        await h.send(newer)
        assert h.state().current == "1.2"
        before = len(fake.transcripts[USER])
        assert await h.app.channel.replay_held(dt.timedelta(0)) == 1
        await h.app.channel.flush()
        await h.app.sender.drain()
        assert "bao-cao-1.1.pdf đến chậm" in fake.said(USER, before)
        assert h.state().current == "1.2"
        with db.session() as s:
            assert s.exec(select(Evidence)).all() == []
    finally:
        await h.app.stop()
