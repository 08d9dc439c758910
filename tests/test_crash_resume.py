"""SIGKILL in the middle of a scripted conversation: nothing acknowledged is lost, and it resumes.

The real `dtibot chat` runs as a child process reading a pipe. A driver answers whatever the stored
session asks for; at seeded random points the process is killed with SIGKILL — right after a line is
written (mid-step) or after the step committed — and started again. Afterwards every answer the bot
acknowledged ("✔ Câu N/62") is stored exactly once with the value sent, and every restart showed the
question the database says the conversation is at.
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
from decimal import Decimal
from pathlib import Path

from sqlmodel import select

from flows.model import Mode, SessionState
from scoring.answers import decode_value
from scoring.model import AnswerType, Framework
from storage import migrate
from storage.db import Database
from storage.models import Conversation
from tests.e2e_support import make_province

DTIBOT = str(Path(sys.executable).parent / "dtibot")
ACK = re.compile(r"✔ Câu (\d+)/62")
QUESTION = re.compile(r"^Câu (\d+)/62 ·", re.MULTILINE)
KILLS = 6
TIMEOUT = 30.0


class Bot:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [DTIBOT, "chat", "--as", "k1", *args],
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


def state(db: Database) -> tuple[SessionState, int]:
    with db.session() as s:
        conv = s.exec(select(Conversation).where(Conversation.chat_id == "k1")).one()
        return SessionState.from_json(json.loads(conv.state_json)), conv.version


def answer_for(fw: Framework, code: str) -> tuple[str, object]:
    ind = fw.indicator(code)
    assert ind is not None
    if ind.answer.type is AnswerType.YES_NO:
        return "có", True
    if ind.answer.type is AnswerType.PERCENTAGE:
        return "50", Decimal(50)
    return "5", Decimal(5)


def test_sigkill_mid_conversation_loses_nothing_acknowledged(tmp_path: Path, tay_ninh: Framework) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    migrate.upgrade(url)
    db = Database(url)
    province = make_province(db, tmp_path)
    code = province.invite("25840", "respondent")
    env = {
        **os.environ,
        "DTI_DATABASE_URL": url,
        "DTI_EVIDENCE_DIR": str(tmp_path / "evidence"),
        "DTI_LANG": "vi",
    }
    rnd = random.Random(20261121)
    codes = [i.code for i in tay_ninh.indicators]
    sent: dict[str, object] = {}
    transcripts: list[str] = []
    kills = 0
    bot = Bot(env, "--join", code)
    bot.wait_for(QUESTION)
    try:
        for _ in range(400):
            session, version = state(db)
            if session.mode is Mode.DONE:
                break
            if session.mode is Mode.EVIDENCE:
                line = "để sau"
            else:
                assert session.mode is Mode.ASK and session.current is not None
                line, value = answer_for(tay_ninh, session.current)
                sent[session.current] = value
            bot.send(line)
            roll = rnd.random()
            if kills < KILLS and roll < 0.1:
                time.sleep(rnd.random() * 0.05)  # somewhere inside the step: before or after its commit
            else:
                deadline = time.monotonic() + TIMEOUT
                while state(db)[1] == version and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert state(db)[1] != version, "the step was not recorded"
                if not (kills < KILLS and roll < 0.2):
                    continue
                # committed; killed before or while its reply is printed
            transcripts.append(bot.kill())
            kills += 1
            bot = Bot(env)
            resumed = bot.wait_for(re.compile(r"👋"))
            resumed = bot.wait_for(re.compile(r"(Câu \d+/62 ·|Gửi minh chứng cho|Đã trả lời đủ)"))
            session, _ = state(db)
            if session.mode is Mode.ASK and session.current is not None:
                shown = QUESTION.findall(resumed)
                assert shown and codes[int(shown[-1]) - 1] == session.current
            elif session.mode is Mode.EVIDENCE:
                assert f"Gửi minh chứng cho {session.current}:" in resumed
        transcripts.append(bot.close())
    finally:
        if bot.proc.poll() is None:
            bot.kill()
    assert kills == KILLS
    acknowledged = {codes[int(n) - 1] for t in transcripts for n in ACK.findall(t)}
    revisions = province.revisions("25840")
    counts = Counter(r.indicator_code for r in revisions)
    assert len(acknowledged) > 40
    for c in acknowledged:
        assert counts[c] == 1, c  # stored, exactly once
    latest = {r.indicator_code: r for r in revisions}
    for c, value in sent.items():
        if c in latest:
            ind = tay_ninh.indicator(c)
            assert ind is not None
            assert decode_value(ind, json.loads(latest[c].value_json)) == value
    assert set(latest) == set(codes)  # and the conversation went on to the end
    db.dispose()
