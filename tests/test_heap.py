"""`bot.heap.settle`: what lives at startup is left out of later collections, the rest is collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot.heap import settle


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_startup_objects_are_left_out_and_later_garbage_is_collected(unfrozen: None) -> None:
    kept = cycle()
    dropped_before = cycle()
    gone_before = weakref.ref(dropped_before)
    del dropped_before

    frozen = settle()

    assert gone_before() is None  # garbage at startup is collected first, not frozen
    # frozen objects freed since (by any thread of the test process) only lower the count
    assert 0 < gc.get_freeze_count() <= frozen
    tracked = gc.get_objects()
    assert all(o is not kept and o is not kept.other for o in tracked)  # skipped by every collection

    later = cycle()
    assert any(o is later for o in gc.get_objects())
    gone_later = weakref.ref(later)
    del later
    gc.collect()
    assert gone_later() is None  # what the process makes after settling is collected as before
