"""The database's part in adopting a province's framework on the web: who may (the level of the
admin's unit) and the audit row that records it (the framework file itself lives in the province's
frameworks directory, see bot/catalog.py)."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import AuditLog, Period, Unit, table_of

UNIT = table_of(Unit)
PERIOD = table_of(Period)


def unit_level(s: Session, unit_id: int) -> str | None:
    """The level (`province`, `district`, …) of a unit, None if there is no such unit."""
    found = s.connection().execute(sa.select(UNIT.c.level).where(UNIT.c.id == unit_id)).scalar_one_or_none()
    return str(found) if found is not None else None


def periods_by_framework(s: Session) -> dict[str, list[str]]:
    """`id@version` of every framework a period pins → the names of those periods."""
    rows = s.connection().execute(
        sa.select(PERIOD.c.framework_id, PERIOD.c.framework_version, PERIOD.c.name).order_by(PERIOD.c.id)
    )
    out: dict[str, list[str]] = {}
    for fid, version, name in rows:
        out.setdefault(f"{fid}@{version}", []).append(str(name))
    return out


def record_adoption(
    s: Session,
    *,
    now: dt.datetime,
    member_id: int,
    operator: str,
    key: str,
    path: str,
    source: str,
    sha256: str,
    indicators: int,
) -> None:
    """The audit row of a framework adopted from an annex on the web (marked as made there)."""
    s.add(
        AuditLog(
            at=now,
            actor_member_id=member_id,
            channel="web",
            operator=operator,
            action="framework.adopt",
            entity="framework",
            entity_id=key,
            new_json=json.dumps(
                {"path": path, "source": source, "sha256": sha256, "indicators": indicators},
                ensure_ascii=False,
            ),
        )
    )
