"""SIGKILL in the middle of a scripted conversation: nothing acknowledged is lost, and it resumes.

Two officials of two communes each talk to their own real `dtibot chat` child process (reading a pipe)
on one SQLite database. A driver answers whatever each stored session asks for; at seeded random points
(20 in all) a process is killed with SIGKILL — right after a line is written (mid-step) or after the
step committed — and started again (`DTI_CRASH_SEED` picks other points). Afterwards every answer the bot
acknowledged ("✔ Câu N/62") is stored exactly once with the value sent, every restart showed the
question the database says the conversation is at, no reply was shown twice and no outbox row was left
unsent.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from flows.model import Mode, SessionState
from scoring.answers import decode_value
from scoring.model import Framework
from storage import migrate
from storage.db import Database
from storage.models import Conversation, Outbox
from tests.e2e_support import make_province, next_line

DTIBOT = str(Path(sys.executable).parent / "dtibot")
ACK = re.compile(r"✔ Câu (\d+)/62")
QUESTION = re.compile(r"^Câu (\d+)/62 ·", re.MULTILINE)
KILLS = 20
TIMEOUT = 30.0


class Bot:
    def __init__(self, env: dict[str, str], chat: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [DTIBOT, "chat", "--as", chat, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def drain(self) -> str:
        while True:
            try:
                self.output.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(self.output)

    def wait_for(self, pattern: re.Pattern[str], after: int = 0) -> str:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            text = self.drain()
            if pattern.search(text, after):
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        finished = self.proc.poll() is not None
        errors = self.proc.stderr.read() if finished and self.proc.stderr else ""
        raise AssertionError(f"no {pattern.pattern!r} in output:\n{self.drain()[-2000:]}\n{errors}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> str:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        return self._finish()

    def close(self) -> str:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=TIMEOUT)
        return self._finish()

    def _finish(self) -> str:
        self.reader.join(timeout=TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        return self.drain()


def state(db: Database, chat: str) -> tuple[SessionState, int]:
    with db.session() as s:
        conv = s.exec(select(Conversation).where(Conversation.chat_id == chat)).one()
        return SessionState.from_json(json.loads(conv.state_json)), conv.version


@dataclass
class Official:
    chat: str
    unit: str
    env: dict[str, str]
    bot: Bot
    sent: dict[str, object] = field(default_factory=dict)
    transcripts: list[str] = field(default_factory=list)
    done: bool = False


def test_sigkill_mid_conversation_loses_nothing_acknowledged(tmp_path: Path, tay_ninh: Framework) -> None:
    """Two officials of two communes answer at the same time, each in their own `dtibot chat` process
    on the same database; the processes are killed 20 times between them."""
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    migrate.upgrade(url)
    db = Database(url)
    province = make_province(db, tmp_path)
    env = {
        **os.environ,
        "DTI_DATABASE_URL": url,
        "DTI_EVIDENCE_DIR": str(tmp_path / "evidence"),
        "DTI_LANG": "vi",
    }
    rnd = random.Random(int(os.environ.get("DTI_CRASH_SEED", "20261121")))
    codes = [i.code for i in tay_ninh.indicators]
    officials = []
    for chat, unit in (("k1", "25840"), ("k2", "25843")):
        bot = Bot(env, chat, "--join", province.invite(unit, "respondent"))
        bot.wait_for(QUESTION)
        officials.append(Official(chat, unit, env, bot))
    kills = 0
    try:
        for _ in range(800):
            active = [o for o in officials if not o.done]
            if not active:
                break
            o = rnd.choice(active)
            session, version = state(db, o.chat)
            if session.mode is Mode.DONE:
                o.done = True
                continue
            line = next_line(tay_ninh, session, o.sent)
            o.bot.send(line)
            roll = rnd.random()
            if kills < KILLS and roll < 0.1:
                time.sleep(rnd.random() * 0.05)  # somewhere inside the step: before or after its commit
            else:
                deadline = time.monotonic() + TIMEOUT
                while state(db, o.chat)[1] == version and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert state(db, o.chat)[1] != version, "the step was not recorded"
                if not (kills < KILLS and roll < 0.2):
                    continue
                # committed; killed before or while its reply is printed
            o.transcripts.append(o.bot.kill())
            kills += 1
            o.bot = Bot(env, o.chat)
            resumed = o.bot.wait_for(re.compile(r"👋"))
            resumed = o.bot.wait_for(re.compile(r"(Câu \d+/62 ·|Gửi minh chứng cho|Đã trả lời đủ)"))
            session, _ = state(db, o.chat)
            if session.mode is Mode.ASK and session.current is not None:
                shown = QUESTION.findall(resumed)
                assert shown and codes[int(shown[-1]) - 1] == session.current
            elif session.mode is Mode.EVIDENCE:
                assert f"Gửi minh chứng cho {session.current}:" in resumed
        for o in officials:
            o.transcripts.append(o.bot.close())
    finally:
        for o in officials:
            if o.bot.proc.poll() is None:
                o.bot.kill()
    assert kills == KILLS
    for o in officials:
        acknowledged = {codes[int(n) - 1] for t in o.transcripts for n in ACK.findall(t)}
        revisions = province.revisions(o.unit)
        counts = Counter(r.indicator_code for r in revisions)
        assert len(acknowledged) > 30
        for c in acknowledged:
            assert counts[c] == 1, (o.chat, c)  # stored, exactly once
        latest = {r.indicator_code: r for r in revisions}
        for c, value in o.sent.items():
            if c in latest:
                ind = tay_ninh.indicator(c)
                assert ind is not None
                assert decode_value(ind, json.loads(latest[c].value_json)) == value
        assert set(latest) == set(codes)  # and the conversation went on to the end
        printed = Counter(n for t in o.transcripts for n in ACK.findall(t))
        assert max(printed.values()) == 1, (o.chat, printed.most_common(3))  # no reply shown twice
        with db.session() as s:
            statuses = Counter(
                r.status
                for r in s.exec(select(Outbox).where(Outbox.channel == "console", Outbox.chat_id == o.chat))
            )
        assert set(statuses) == {"sent"} and statuses["sent"] > 62, (o.chat, statuses)  # none left behind
    db.dispose()
