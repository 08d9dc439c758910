"""The message each unit receives when results are published: total, index, band, ranks, points by
group and the three indicators where it lost the most — built from the frozen published copy."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flows.model import Fixed, Msg, Reply, msg
from scoring.messages import N_


def result_reply(period_name: str, unit: Mapping[str, Any], units_ranked: int) -> Reply:
    """`unit` is one entry of the published document (decimals as text)."""
    if not unit["appraised"]:
        return Reply(
            (
                msg(
                    N_("result.not_appraised"),
                    period=period_name,
                    unit=unit["name"],
                    rank=int(unit["rank"]),
                    of=units_ranked,
                ),
            )
        )
    lines: list[Msg] = [
        msg(
            N_("result.total"),
            period=period_name,
            unit=unit["name"],
            sum=Decimal(unit["total"]),
            max=Decimal(unit["max"]),
            index=Fixed(Decimal(unit["index"]), 4),
        )
    ]
    if unit.get("band"):
        lines.append(msg(N_("result.band"), band=unit["band"]))
    lines.append(msg(N_("result.rank"), rank=int(unit["rank"]), of=units_ranked))
    if unit.get("district_rank") is not None:
        lines.append(
            msg(
                N_("result.district_rank"),
                rank=int(unit["district_rank"]),
                district=unit["district_name"],
                of=int(unit["district_size"]),
            )
        )
    lines += [
        msg(N_("preview.group"), id=g["id"], name=g["name"], sum=Decimal(g["score"]), max=Decimal(g["max"]))
        for g in unit["groups"]
    ]
    losses = tuple(
        msg(N_("result.loss_item"), code=x["code"], points=Decimal(x["lost"])) for x in unit["losses"]
    )
    if losses:
        lines.append(msg(N_("result.losses"), items=losses))
    return Reply(tuple(lines))
