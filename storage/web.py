"""The web workspace's own rows: sign-in links, browser sessions, and who may see which units.

A sign-in link is used once, within minutes; it opens a session, known by the SHA-256 of the cookie's
token, that ends after a while without use or when the member signs out (everywhere: every session of
the member). Who sees what is decided here, from the member's role and unit in the database, never from
what a page asks for: a province (or district) admin sees every unit under their unit, a reviewer
every unit under theirs and appraises the units the chat's appraisal gives them (storage/appraisal.py),
a unit's leader and respondents only their unit.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from storage.appraisal import scope
from storage.models import AuditLog, Member, Unit, WebLink, WebSession, table_of

WEB_LINK = table_of(WebLink)
WEB_SESSION = table_of(WebSession)
MEMBER = table_of(Member)
UNIT = table_of(Unit)
AUDIT = table_of(AuditLog)

NEW_WEB_LINK = WEB_LINK.insert()
SESSION_IDLE = dt.timedelta(hours=8)  # a session unused this long is over
_TOUCH_EVERY = dt.timedelta(minutes=1)  # last_seen is written at most this often


def link_row(
    token_sha256: str, member_id: int, channel: str | None, now: dt.datetime, expires: dt.datetime
) -> dict[str, object]:
    """The one row builder of a sign-in link (the chat's record step and the operator's command)."""
    return dict(
        token_sha256=token_sha256,
        member_id=member_id,
        channel=channel,
        created_at=now,
        expires_at=expires,
        used_at=None,
    )


def links_since(s: Session, member_id: int, since: dt.datetime) -> int:
    """How many sign-in links the member was given since `since` (the rate limit)."""
    query = sa.select(sa.func.count()).where(
        WEB_LINK.c.member_id == member_id, WEB_LINK.c.created_at >= since
    )
    return int(s.connection().execute(query).scalar_one())


def _audit(
    s: Session,
    now: dt.datetime,
    action: str,
    member_id: int,
    *,
    channel: str | None = "web",
    operator: str | None = None,
    new: object = None,
) -> None:
    unit_id = s.connection().execute(sa.select(MEMBER.c.unit_id).where(MEMBER.c.id == member_id)).scalar()
    s.connection().execute(
        AUDIT.insert(),
        dict(
            at=now,
            actor_member_id=member_id if operator is None else None,
            channel=channel,
            operator=operator,
            action=action,
            entity="member",
            entity_id=str(member_id),
            unit_id=unit_id,
            assessment_id=None,
            old_json=None,
            new_json=json.dumps(new, ensure_ascii=False) if new is not None else None,
        ),
    )


def operator_link(
    s: Session, member_id: int, token_sha256: str, now: dt.datetime, expires: dt.datetime, operator: str
) -> None:
    """A sign-in link an operator printed (`dtibot web link`), audited with who did it."""
    s.connection().execute(NEW_WEB_LINK, link_row(token_sha256, member_id, None, now, expires))
    _audit(
        s,
        now,
        "web.link_issued",
        member_id,
        channel=None,
        operator=operator,
        new={"expires_at": expires.isoformat()},
    )


class LinkProblem(enum.StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    MEMBER_GONE = "member_gone"


@dataclass(frozen=True)
class LinkInfo:
    """A link as its page shows it before it is used."""

    member_id: int
    problem: LinkProblem | None


def look_up_link(s: Session, token_sha256: str, now: dt.datetime) -> LinkProblem | None:
    """Whether a link can still be used (None) or why not."""
    row = (
        s.connection()
        .execute(
            sa.select(WEB_LINK.c.used_at, WEB_LINK.c.expires_at, MEMBER.c.removed_at)
            .join(MEMBER, MEMBER.c.id == WEB_LINK.c.member_id)
            .where(WEB_LINK.c.token_sha256 == token_sha256)
        )
        .first()
    )
    if row is None:
        return LinkProblem.UNKNOWN
    if row.used_at is not None:
        return LinkProblem.USED
    if now >= row.expires_at:
        return LinkProblem.EXPIRED
    if row.removed_at is not None:
        return LinkProblem.MEMBER_GONE
    return None


def use_link(
    s: Session, token_sha256: str, session_sha256: str, csrf_token: str, now: dt.datetime
) -> int | LinkProblem:
    """Use a link once and open a browser session with it: the member's id, or why not. The link is
    claimed by a compare-and-set, so two browsers racing with one link get one session."""
    problem = look_up_link(s, token_sha256, now)
    if problem is not None:
        return problem
    conn = s.connection()
    claimed = conn.execute(
        WEB_LINK.update()
        .where(WEB_LINK.c.token_sha256 == token_sha256, WEB_LINK.c.used_at.is_(None))
        .values(used_at=now)
        .returning(WEB_LINK.c.member_id)
    ).first()
    if claimed is None:
        return LinkProblem.USED
    member_id = int(claimed.member_id)
    conn.execute(
        WEB_SESSION.insert(),
        dict(
            token_sha256=session_sha256,
            member_id=member_id,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
            revoked_at=None,
        ),
    )
    _audit(s, now, "web.signin", member_id)
    return member_id


@dataclass(frozen=True)
class SignedIn:
    session_id: int
    member_id: int
    csrf_token: str


def signed_in(s: Session, session_sha256: str, now: dt.datetime) -> SignedIn | None:
    """The session of a cookie, if it is open (not signed out, not idle too long, its member not
    removed); its last use is recorded."""
    row = (
        s.connection()
        .execute(
            sa.select(
                WEB_SESSION.c.id,
                WEB_SESSION.c.member_id,
                WEB_SESSION.c.csrf_token,
                WEB_SESSION.c.last_seen_at,
            )
            .join(MEMBER, MEMBER.c.id == WEB_SESSION.c.member_id)
            .where(
                WEB_SESSION.c.token_sha256 == session_sha256,
                WEB_SESSION.c.revoked_at.is_(None),
                MEMBER.c.removed_at.is_(None),
            )
        )
        .first()
    )
    if row is None or now - row.last_seen_at >= SESSION_IDLE:
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        s.connection().execute(
            WEB_SESSION.update().where(WEB_SESSION.c.id == row.id).values(last_seen_at=now)
        )
    return SignedIn(int(row.id), int(row.member_id), str(row.csrf_token))


def sign_out(s: Session, member_id: int, session_id: int | None, now: dt.datetime) -> int:
    """Sign out one session, or every session of the member (`session_id` None); how many ended."""
    where = [WEB_SESSION.c.member_id == member_id, WEB_SESSION.c.revoked_at.is_(None)]
    if session_id is not None:
        where.append(WEB_SESSION.c.id == session_id)
    ended = s.connection().execute(WEB_SESSION.update().where(*where).values(revoked_at=now)).rowcount
    _audit(s, now, "web.signout" if session_id is not None else "web.signout_everywhere", member_id)
    return int(ended)


# -- who sees what -----------------------------------------------------------------------------------


class WebRole(enum.StrEnum):
    ADMIN = "admin"
    REVIEWER = "reviewer"
    UNIT = "unit"  # a unit's leader or respondent


@dataclass(frozen=True)
class Viewer:
    """A signed-in member and what they may see and do, decided from the database."""

    member_id: int
    name: str | None
    role: WebRole
    member_role: str
    unit_id: int
    unit_name: str
    language: str
    visible: frozenset[int]  # units whose pages they may open
    appraises: frozenset[int]  # units they appraise
    uploads: frozenset[int]  # units they may add evidence to

    def sees(self, unit_id: int) -> bool:
        return unit_id in self.visible


def _descendants(s: Session, root: int) -> set[int]:
    parents = {int(r.id): r.parent_id for r in s.connection().execute(sa.select(UNIT.c.id, UNIT.c.parent_id))}
    found = {root}
    changed = True
    while changed:
        changed = False
        for uid, parent in parents.items():
            if parent in found and uid not in found:
                found.add(uid)
                changed = True
    return found


def viewer(s: Session, member_id: int) -> Viewer | None:
    """What the member may see and do on the web (None: no such member any more)."""
    row = (
        s.connection()
        .execute(
            sa.select(MEMBER.c.role, MEMBER.c.unit_id, MEMBER.c.language, MEMBER.c.display_name, UNIT.c.name)
            .join(UNIT, UNIT.c.id == MEMBER.c.unit_id)
            .where(MEMBER.c.id == member_id, MEMBER.c.removed_at.is_(None))
        )
        .first()
    )
    if row is None:
        return None
    unit_id = int(row.unit_id)

    def made(
        role: WebRole, visible: frozenset[int], appraises: frozenset[int], uploads: frozenset[int]
    ) -> Viewer:
        name = row.display_name
        return Viewer(
            member_id, name, role, row.role, unit_id, row.name, row.language, visible, appraises, uploads
        )

    if row.role == "admin":
        return made(WebRole.ADMIN, frozenset(_descendants(s, unit_id)), frozenset(), frozenset())
    if row.role == "reviewer":
        appraised = frozenset(scope(s, unit_id))
        return made(WebRole.REVIEWER, frozenset(_descendants(s, unit_id)) | appraised, appraised, frozenset())
    own = frozenset({unit_id})
    return made(WebRole.UNIT, own, frozenset(), own)
