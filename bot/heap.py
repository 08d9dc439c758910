"""Short full garbage collections in a long-running bot process.

A bot process holds a few hundred thousand objects that live as long as it does: the modules, classes
and schemas of aiogram, pydantic and SQLAlchemy, and our own. CPython collects its oldest generation
every so often by traversing every one of them, and no update is handled meanwhile: a large share of
the latency tail at deadline-day load (bench/RESULTS.md). Once the process has started, `settle`
collects what is already garbage and moves everything left into the permanent generation
(`gc.freeze`), which collections skip: a full collection then traverses only what was made since.

The price: an object alive at startup that later becomes part of unreachable cycles is never freed.
What is alive once the process has started is what it keeps anyway.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then exempt every object alive now from later collections; returns how many are."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
