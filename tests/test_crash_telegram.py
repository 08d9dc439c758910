"""SIGKILL the real Telegram bot process 20 times while officials answer: nothing acknowledged is lost.

Two officials of two communes talk to a real `dtibot run telegram` process (long polling against the
fake Bot API on 127.0.0.1, on one SQLite database). A driver answers whatever each stored session asks
for; at seeded random points the process is killed with SIGKILL, either somewhere inside a step or
right after it committed, and started again (`DTI_CRASH_SEED` picks other points). Updates the dead
process had not confirmed come again from getUpdates and are applied once. After every restart the
official types `/tieptuc` and must be shown the question the database says they are at. The bot
handles its messages' database work in a child process (bot/db_process.py): it must end with the bot.

Afterwards:
- every answer the bot acknowledged ("✔ Câu N/62" at the fake API) is stored exactly once, with the
  value sent, and both conversations went on to the last indicator;
- every outbox row was sent, and every one of them reached the fake API (a row the killed process
  had claimed is sent by the next one once the claim's lease, 1,5 s here, has run out);
- a message reached the fake API twice only when the process was killed between Telegram accepting
  it and the bot recording that (the Bot API has no idempotency key): the first copy is then the last
  message of that chat before a restart and the second the first after it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlmodel import select

from flows.model import Mode, SessionState
from scoring.answers import decode_value
from scoring.model import Framework
from storage import migrate
from storage.db import Database
from storage.models import Conversation, Outbox, ProcessedInbound
from tests.e2e_support import make_province, next_line
from tests.fake_telegram import FakeTelegram, Limits

DTIBOT = str(Path(sys.executable).parent / "dtibot")
ACK = re.compile(r"✔ Câu (\d+)/62")
QUESTION = re.compile(r"^Câu (\d+)/62 ·", re.MULTILINE)
KILLS = 20
TIMEOUT = 60.0


def state(db: Database, chat: int) -> tuple[SessionState, int] | None:
    with db.session() as s:
        conv = s.exec(
            select(Conversation).where(Conversation.channel == "telegram", Conversation.chat_id == str(chat))
        ).first()
        return (SessionState.from_json(json.loads(conv.state_json)), conv.version) if conv else None


@dataclass
class Official:
    chat: int
    unit: str
    sent: dict[str, object] = field(default_factory=dict)
    done: bool = False


@dataclass
class BotProcess:
    env: dict[str, str]
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    children_seen: int = 0  # most child processes the bot had at a kill (its database process)
    _err: IO[bytes] | None = None

    async def start(self) -> None:
        self.starts += 1
        self._err = open(self.log, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self.proc = await asyncio.create_subprocess_exec(
            DTIBOT,
            "run",
            "telegram",
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._err,
        )

    async def kill(self) -> float:
        """SIGKILL the bot; its children (the database process) must end with it, or they could
        still write once the next bot has started."""
        assert self.proc is not None and self._err is not None
        pid = self.proc.pid
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        self.children_seen = max(self.children_seen, len(children))
        self.proc.send_signal(signal.SIGKILL)
        at = time.monotonic()
        await self.proc.wait()
        self._err.close()
        await until(lambda: all(ended(c) for c in children), f"children {children} outlived the bot", 10)
        return at

    async def stop(self) -> int:
        assert self.proc is not None and self._err is not None
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        self._err.close()
        return code


def ended(pid: int) -> bool:
    """The process is gone (or a zombie its new parent has not reaped yet)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


async def until(check: Any, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_sigkill_the_telegram_process_loses_nothing_acknowledged(
    tmp_path: Path, tay_ninh: Framework
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    migrate.upgrade(url)
    db = Database(url)
    province = make_province(db, tmp_path)
    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=10_000.0))
    await fake.start()
    bot = BotProcess(
        {
            **os.environ,
            "DTI_DATABASE_URL": url,
            "DTI_EVIDENCE_DIR": str(tmp_path / "evidence"),
            "DTI_LANG": "vi",
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_URL": fake.url,
            "TELEGRAM_RATE": "1000",
            "TELEGRAM_CHAT_INTERVAL": "0",
            "DTI_OUTBOX_LEASE": "1.5",  # a row the dead process held goes out again soon
            "DTI_DB_PROCESS": "1",  # the default: batches in a child process, which must die with the bot
        },
        tmp_path / "bot.log",
    )
    rnd = random.Random(int(os.environ.get("DTI_CRASH_SEED", "20261121")))
    codes = [i.code for i in tay_ninh.indicators]
    officials = [Official(8_100_001, "25840"), Official(8_100_002, "25843")]
    kills: list[float] = []
    restarts: list[float] = []  # when each replacement process was spawned
    await bot.start()
    try:
        for o in officials:
            fake.push(fake.text(o.chat, f"/start {province.invite(o.unit, 'respondent')}"))
        for o in officials:
            await until(lambda o=o: "Câu 1/62 ·" in fake.text_of(o.chat), "joined and asked 1.1")
        for _ in range(1000):
            active = [o for o in officials if not o.done]
            if not active:
                break
            o = rnd.choice(active)
            found = state(db, o.chat)
            assert found is not None
            session = found[0]
            if session.mode is Mode.DONE:
                o.done = True
                continue
            line = next_line(tay_ninh, session, o.sent)
            pushed = fake.push(fake.text(o.chat, line))
            roll = rnd.random()
            if len(kills) < KILLS and roll < 0.1:
                await asyncio.sleep(rnd.random() * 0.05)  # inside the step: before or after its commit
            else:
                await until(lambda p=pushed: settled(db, str(p["update_id"])), f"{pushed} not applied")
                if not (len(kills) < KILLS and roll < 0.2):
                    continue
            kills.append(await bot.kill())
            await bot.start()
            restarts.append(time.monotonic())
            # whatever the dead process left unconfirmed is delivered again, then the official asks
            asked = str(fake.push(fake.text(o.chat, "/tieptuc"))["update_id"])
            await until(lambda asked=asked: settled(db, asked), "resumed after a restart")
            resumed = "\n".join(m.text for m in fake.transcripts[o.chat][-2:])  # the reply to /tieptuc
            found = state(db, o.chat)
            assert found is not None
            session = found[0]
            if session.mode is Mode.ASK and session.current is not None:
                shown = QUESTION.findall(resumed)
                assert shown and codes[int(shown[-1]) - 1] == session.current, (resumed, session.current)
            elif session.mode is Mode.EVIDENCE:
                assert f"Gửi minh chứng cho {session.current}:" in resumed, resumed
        await until(lambda: outbox_left(db) == 0, "every outbox row sent")
        assert await bot.stop() == 0
    finally:
        if bot.proc is not None and bot.proc.returncode is None:
            await bot.kill()
        await fake.stop()
    assert len(kills) == KILLS and bot.starts == KILLS + 1
    assert bot.children_seen >= 1  # the database work ran in a process of its own (DTI_DB_PROCESS)
    for o in officials:
        texts = [m.text for m in fake.transcripts[o.chat]]
        acknowledged = {codes[int(n) - 1] for t in texts for n in ACK.findall(t)}
        revisions = province.revisions(o.unit)
        counts = Counter(r.indicator_code for r in revisions)
        assert len(acknowledged) == len(codes)
        for c in acknowledged:
            assert counts[c] == 1, (o.chat, c)  # stored, exactly once
        latest = {r.indicator_code: r for r in revisions}
        assert set(latest) == set(codes)  # the conversation went on to the end
        for c, value in o.sent.items():
            ind = tay_ninh.indicator(c)
            assert ind is not None
            assert decode_value(ind, json.loads(latest[c].value_json)) == value
        with db.session() as s:
            rows = list(
                s.exec(select(Outbox).where(Outbox.channel == "telegram", Outbox.chat_id == str(o.chat)))
            )
        assert {r.status for r in rows} == {"sent"} and len(rows) > 2 * len(codes)
        delivered = Counter(texts)
        for r in rows:  # none lost
            text = json.loads(r.payload_json).get("text", "")
            assert not text or any(text[:40] in t for t in delivered), (o.chat, text)
        check_duplicates(o.chat, fake.transcripts[o.chat], restarts)
    db.dispose()


def outbox_left(db: Database) -> int:
    with db.session() as s:
        return len(list(s.exec(select(Outbox.id).where(Outbox.status != "sent"))))


def settled(db: Database, update_id: str) -> bool:
    """The update was handled and everything queued so far has reached the fake API."""
    with db.session() as s:
        if s.get(ProcessedInbound, ("telegram", update_id)) is None:
            return False
    return outbox_left(db) == 0


def check_duplicates(chat: int, sent: list[Any], restarts: list[float]) -> None:
    """A message twice in a row only across a restart: Telegram took it, the killed bot had not
    recorded that. The first copy may reach the fake API just after the kill signal (the request was
    already on its way), but it cannot come after the next process was spawned, and the second copy
    cannot come before."""
    for previous, current in itertools.pairwise(sent):
        if previous.text != current.text or ACK.search(current.text) is None:
            continue
        assert any(previous.at <= r <= current.at for r in restarts), (chat, current.text)
