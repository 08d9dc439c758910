"""The database work in a process of its own (bot/db_process.py) against the one-by-one path.

The batches-against-one-by-one comparison of tests/test_batches.py, with the batches run by a child process:
the same answers, revisions, evidence, audit trail, dialogue states, replies and exactly-once records.
Then what a second process adds: the child killed while batches are in flight (a new one takes the
batch over; nothing is applied twice or lost), a child that cannot start, an outcome the way back
cannot carry, and the child ending with its parent.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bot import db_process
from bot.service import Item, Service, Unavailable
from flows.model import Inbound, InboundKind
from storage import migrate
from storage.db import Database
from tests.e2e_support import at_now
from tests.test_batches import build, items, one_by_one, rounds, stored

pytest_plugins = ["tests.storage_fixtures"]

ROOT = Path(__file__).resolve().parent.parent


def gone(pid: int) -> bool:
    """The process ended (a zombie not yet reaped by its new parent counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def run_rounds(svc: Service, codes: list[str], kill_in: set[int], rnd: random.Random) -> list[int]:
    """Every round's messages at once through `handle_async`; in the rounds of `kill_in` the database
    process is SIGKILLed a random moment after they were handed over. Returns the child pids seen."""
    children: list[int] = []
    for r in range(rounds(codes)):
        pid = await svc.database_process().ready()
        if not children or children[-1] != pid:
            children.append(pid)
        handled = asyncio.gather(*(svc.handle_async(*item) for item in items("B", codes, r)))
        if r in kill_in:
            await asyncio.sleep(rnd.random() * 0.05)  # inside a batch, between two, or after the last
            os.kill(pid, signal.SIGKILL)
        outcomes = await handled
        assert all(isinstance(o, list) for o in outcomes), outcomes
    return children


def test_batches_in_a_database_process_store_and_say_exactly_what_one_by_one_does(db: Database) -> None:
    codes = build(db)
    one_by_one(db, codes["A"])
    svc = Service(db, clock=at_now, db_process=True)
    try:
        children = asyncio.run(run_rounds(svc, codes["B"], set(), random.Random(1)))
    finally:
        svc.close()
    assert len(children) == 1 and children[0] != os.getpid()
    expected, got = stored(db, "A"), stored(db, "B")
    assert expected["answers"] and expected["evidence"] and expected["replies"]
    for key in expected:
        assert got[key] == expected[key], key
    assert gone(children[0])  # closed with the service


def test_a_database_process_killed_mid_batch_is_replaced_and_nothing_is_lost_or_applied_twice(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL the child in four rounds, at random moments after the round was handed over: a batch
    it had not committed is rolled back and handled by the next child; one it had committed is
    recognised there by its inbound ids and not applied again. The run ends as the one-by-one run."""
    codes = build(db)
    one_by_one(db, codes["A"])
    svc = Service(db, clock=at_now, db_process=True)
    rnd = random.Random(int(os.environ.get("DTI_CRASH_SEED", "20261122")))
    try:
        children = asyncio.run(run_rounds(svc, codes["B"], {1, 3, 6, 9}, rnd))
    finally:
        svc.close()
    assert len(children) == 5  # each killed child replaced once
    assert [r for r in caplog.records if "database process died" in r.getMessage()]
    expected, got = stored(db, "A"), stored(db, "B")
    for key in expected:
        assert got[key] == expected[key], key


def test_a_database_process_that_cannot_start_makes_the_messages_unavailable(tmp_path: Path) -> None:
    """The child fails as it starts (here a database URL whose driver does not exist): each attempt
    starts a new one, and once they are used up the messages get the service's "send it again"
    outcome instead of waiting for ever."""
    url = f"sqlite:///{tmp_path / 'dti.db'}"
    migrate.upgrade(url)
    svc = Service(Database(url), clock=at_now, db_process=True, attempts=2)
    broken = db_process.Settings("nosuchdriver://x", {}, at_now, 2, (0.0,), 32)
    svc.dispatcher._process = db_process.DatabaseProcess(broken)
    try:
        with pytest.raises(Unavailable, match="kept dying"):
            asyncio.run(svc.handle_async("telegram", "1", "in-1", Inbound(InboundKind.TEXT, text="xin chào")))
    finally:
        svc.close()


def test_an_outcome_that_cannot_be_pickled_comes_back_as_what_it_was() -> None:
    class Local(Exception):  # a class pickle cannot find by name
        pass

    error = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    for exc in (Local("boom"), error):
        back = pickle.loads(pickle.dumps(db_process._portable(exc)))
        assert type(back.__class__.__name__) is str and str(exc).splitlines()[0][:20] in str(back)
    unavailable = pickle.loads(pickle.dumps(db_process._portable(Unavailable("down"))))
    assert isinstance(unavailable, Unavailable)  # the channels tell the user to send it again
    assert db_process._portable([1, 2]) == [1, 2]


def test_the_database_process_ends_when_the_bot_process_is_killed(tmp_path: Path) -> None:
    """A killed bot leaves no child behind that could write after a new bot started."""
    url = f"sqlite:///{tmp_path / 'dti.db'}"
    migrate.upgrade(url)
    script = textwrap.dedent(
        f"""
        import sys, time
        from bot.service import Service
        from storage.db import Database
        svc = Service(Database({url!r}), db_process=True)
        print(svc.database_process().start().result(timeout=60), flush=True)
        time.sleep(120)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True) as bot:
        try:
            assert bot.stdout is not None
            child = int(bot.stdout.readline())
            assert not gone(child)
            bot.send_signal(signal.SIGKILL)
            bot.wait(10)
            deadline = time.monotonic() + 10
            while not gone(child):
                assert time.monotonic() < deadline, "the database process outlived the bot"
                time.sleep(0.05)
        finally:
            if bot.poll() is None:
                bot.kill()


def test_the_signals_that_stop_a_bot_are_left_to_the_bot(tmp_path: Path) -> None:
    """Ctrl-C or a service manager's SIGTERM reach the whole process group: the database process lives
    on until the bot, finishing what it handles, closes it."""
    url = f"sqlite:///{tmp_path / 'dti.db'}"
    migrate.upgrade(url)
    svc = Service(Database(url), clock=at_now, db_process=True)

    async def go() -> None:
        child = await svc.database_process().ready()
        for sig in (signal.SIGINT, signal.SIGTERM):
            os.kill(child, sig)
        await asyncio.sleep(0.3)
        assert not gone(child)
        ids = await svc.handle_async("telegram", "1", "in-1", Inbound(InboundKind.TEXT, text="xin chào"))
        assert ids  # the stranger is told how to join
        assert await svc.database_process().ready() == child

    try:
        asyncio.run(go())
    finally:
        svc.close()


def test_items_cross_to_the_database_process_unchanged() -> None:
    """What a channel hands over (inbound message, files, rejected files, rows to queue first)."""
    from flows.model import FileInfo, Rejected

    inbound = Inbound(
        InboundKind.FILE,
        files=(FileInfo("a" * 64, 10, "application/pdf", "bao-cao.pdf"),),
        rejected=(Rejected("x.exe", "unsupported_type"),),
        caption="Quyết định số 12",
    )
    item: Item = ("telegram", "42", "u-1", inbound, ({"text": "đã nhận"},))
    assert pickle.loads(pickle.dumps(item)) == item
