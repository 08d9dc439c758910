"""Long polling under a backlog (issue 21 item 20).

Telegram confirms every update below getUpdates' offset, so the bot holds the offset at the oldest
update it has not finished (a crash must not lose it) and every call returns the updates in hand
again before any new one. With 200 updates waiting, the bot called getUpdates about 260 times in
8 s and received 26 000 updates. Now, while updates are in hand, it asks again only once the window
in hand is at most half a call (so at least as many new updates come back as old ones), at least a
short pause after the last call — or, when the oldest update is stuck, once in a while. The figures
are counts at the fake Bot API, not times: the 200 updates are each handled exactly once and in order
within each chat, and received at most about twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.channels.telegram import make_bot
from bot.channels.telegram_app import Poller, TelegramApp
from storage.admin import UnitRow, create_invite, import_units
from storage.db import Database
from storage.models import ProcessedInbound
from tests.e2e_support import NOW, make_province
from tests.fake_telegram import FakeTelegram, Limits
from tests.test_telegram import FAST

CHATS = 20
# what each official sends, in order: the join, 1.1 – 1.4 with "để sau" at each evidence step, the
# score; (indicator, typed, stored as)
ANSWERS = [
    ("1.1", "70,4", '"70.4"'),
    ("1.2", "12/30", '{"numerator": "12", "denominator": "30"}'),
    ("1.3", "55,5", '"55.5"'),
    ("1.4", "5", '"5"'),
]


async def test_a_backlog_of_200_updates_is_received_about_once(db: Database, tmp_path: Path) -> None:
    p = make_province(db, tmp_path)
    units = [UnitRow(f"X{n:03d}", f"Xã thử {n}", "commune", "70000") for n in range(CHATS)]
    with db.session() as s:
        import_units(s, units, NOW)
        codes = [create_invite(s, u.code, "respondent", NOW).code for u in units]
    fake = FakeTelegram(limits=Limits(chat_interval=0.0, per_second=100_000))
    await fake.start()
    chats = [700_000 + n for n in range(CHATS)]
    lines = {chat: [f"/start {code}"] for chat, code in zip(chats, codes, strict=True)}
    for chat in chats:
        for _, line, _ in ANSWERS:
            lines[chat] += [line, "để sau"]
        lines[chat].append("xem điểm")
    for step in range(len(lines[chats[0]])):  # interleaved, as many officials writing at once
        for chat in chats:
            fake.push(fake.text(chat, lines[chat][step]))
    total = fake.pending
    assert total == 200

    app = TelegramApp(db, make_bot(fake.token, fake.url, timeout=5.0), p.store, pace=FAST, remind_every=None)
    app.service.clock = p.clock
    await app.start_polling()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with db.session() as s:
                handled = s.exec(select(func.count()).select_from(ProcessedInbound)).one()
            if handled == total:
                break
            await asyncio.sleep(0.05)
        assert handled == total
    finally:
        await app.stop()
        await fake.stop()

    assert fake.pending == 0  # all confirmed once handled (the stop confirms the last ones)
    # every update came back at most about twice: never the same window call after call
    assert fake.updates_returned <= 2 * total + 100, (fake.updates_returned, fake.get_updates_calls)
    assert fake.get_updates_calls <= 25, fake.get_updates_calls
    for n in range(CHATS):  # handled once each, in each chat's order
        revisions = p.revisions(f"X{n:03d}")
        assert [(r.indicator_code, r.value_json) for r in revisions] == [
            (code, value) for code, _, value in ANSWERS
        ], revisions


def test_when_the_next_call_is_worth_making() -> None:
    """The rule on its own, with the clock passed in: what a call would return again decides."""
    poller = Poller(bot=None, dispatcher=None)  # type: ignore[arg-type]
    assert poller.wait(None, 0.0) == 0  # nothing received yet: long poll
    poller._newest = 299
    assert poller.wait(300, 5.0) == 0  # nothing in hand: long poll at once
    poller._last_call, poller._moved = 10.0, 10.0
    assert poller.wait(250, 10.04) == pytest.approx(0.06)  # half a call in hand: after the pause
    assert poller.wait(250, 10.2) == 0
    assert poller.wait(249, 10.2) == poller.pause  # more than half in hand: wait for some to finish
    assert poller.wait(249, 10.9) == poller.pause
    assert poller.wait(249, 11.0) == 0  # the oldest stuck for a second: ask for what still fits
    poller._last_call = 11.0
    assert poller.wait(249, 11.5) == pytest.approx(0.5)  # …once a second
    assert poller.wait(200, 20.0) == poller.pause  # a full call in hand: nothing new could come back
