"""Score and rank 3,300 communes × the 62-indicator Tây Ninh framework.

Prints the time to score and rank next to the time to merely load the same answers from JSON (parse
the text and validate each answer into typed values, as `dtibot rank` does), both measured in this run
on this machine. Scoring should cost less than loading.

    make bench            # or: .venv/bin/python bench/score_bench.py [--units 3300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bot import catalog
from scoring.answers import Answer, parse_answers
from scoring.engine import score_units
from scoring.model import AnswerType, Framework
from scoring.ranking import RankEntry, rank


def synthetic_units(fw: Framework, n: int, seed: int = 2025) -> dict[str, Any]:
    """Deterministic answers of every type; some missing, some not applicable, some without evidence."""
    rnd = random.Random(seed)
    units = []
    for u in range(n):
        answers: dict[str, Any] = {}
        for ind in fw.indicators:
            roll = rnd.random()
            if roll < 0.05:
                continue
            if roll < 0.08 and ind.allows_not_applicable:
                answers[ind.code] = {"not_applicable": True}
                continue
            t = ind.answer.type
            if t is AnswerType.PERCENTAGE:
                if rnd.random() < 0.3:
                    den = rnd.randint(10, 5000)
                    value: Any = {"numerator": rnd.randint(0, den), "denominator": den}
                else:
                    value = round(rnd.uniform(0, 100), 1)
            elif t is AnswerType.YES_NO:
                value = rnd.random() < 0.7
            else:
                value = round(rnd.uniform(0, float(ind.max_points)), 2)
            answer: dict[str, Any] = {"value": value}
            if rnd.random() < 0.9:
                answer["evidence"] = [f"{u}-{ind.code}.pdf"]
            answers[ind.code] = answer
        units.append({"id": f"{u:05d}", "district": f"d{u % 40}", "answers": answers})
    return {"units": units}


def load(fw: Framework, text: str) -> dict[str, dict[str, Answer]]:
    doc = json.loads(text, parse_float=Decimal)
    return {u["id"]: parse_answers(fw, {"answers": u["answers"]}) for u in doc["units"]}


def score_and_rank(fw: Framework, units: dict[str, dict[str, Answer]]) -> int:
    reports = score_units(fw, units)
    rows = rank(RankEntry.from_report(uid, r) for uid, r in reports.items())
    return len(rows)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=3300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    fw = catalog.framework("tay-ninh-commune-2025")
    text = json.dumps(synthetic_units(fw, args.units))
    load_s, units = timed(lambda: load(fw, text), args.repeat)
    assert isinstance(units, dict)
    score_s, ranked = timed(lambda: score_and_rank(fw, units), args.repeat)
    assert ranked == args.units
    answers = sum(len(a) for a in units.values())
    verdict = "OK: scoring costs less than loading" if score_s < load_s else "SLOWER than loading"
    mb = len(text) / 1e6
    best = f"best of {args.repeat}"
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"input:    {args.units} units x {len(fw.indicators)} indicators, {answers} answers, {mb:.1f} MB")
    print(f"baseline  load answers from JSON (parse + validate): {load_s * 1000:8.1f} ms ({best})")
    print(f"measured  score all units + peer averages + rank:    {score_s * 1000:8.1f} ms ({best})")
    print(f"ratio     score / load = {score_s / load_s:.2f} ({verdict})")
    print(f"per unit  {score_s / args.units * 1e6:.0f} us; per answer {score_s / answers * 1e9:.0f} ns")


if __name__ == "__main__":
    main()
