"""`dtibot` commands that work on the database: migrations, units, periods, invites, status, chat, demo.

Every command but `db upgrade` refuses to run on a database that is not at the latest migration and
says which command fixes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import getpass
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import exc as sa_exc
from sqlmodel import Session, col, select

from bot import catalog, heap
from bot.channels.console import ConsoleChannel
from bot.channels.zalo import ZaloConfig
from bot.i18n import Translator
from bot.render.labels import LEVEL, ROLE
from bot.render.reply import CHANNEL_ESCAPES
from bot.results import NothingComputed, Premature, compute, premature, publish_results
from bot.scheduler import ReminderScheduler
from bot.service import Service, render, utc_now
from bot.sheets import SheetError, read_rows
from bot.web import cli as web_cli
from flows.engine import join_code
from flows.model import Reply, msg
from flows.reminders import Policy
from flows.web import LINK_MINUTES
from scoring.answers import VIETNAM_TZ
from scoring.messages import N_
from scoring.model import UnitLevel
from storage import migrate
from storage.admin import (
    AdminError,
    MemberListing,
    UnitRow,
    create_invite,
    extend_deadline,
    import_units,
    list_invites,
    list_members,
    list_periods,
    list_units,
    masked_code,
    open_period,
    period_by_ref,
    period_extensions,
    remove_member,
    revoke_invite,
)
from storage.db import DATABASE_URL_ENV, Database, NotMigrated, database_url, sqlite_file
from storage.evidence import EvidenceStore, evidence_dir
from storage.held import held_count
from storage.models import ROLES, Member, Period, Unit
from storage.outbox import status_counts
from storage.record import queue_replies
from storage.reminders import LedgerStats, ledger_stats, unit_states
from storage.results import published_units
from storage.zalo import save_token
from storage.zalo import token as zalo_token

if TYPE_CHECKING:
    from bot.cli import Context
    from bot.outbox import Pace
    from bot.service import Service

Command = Callable[["Context", argparse.Namespace], int]


@contextmanager
def database(ctx: Context, *, migrated: bool = True) -> Iterator[Database]:
    url = database_url()
    missing = sqlite_file(url)
    if missing is not None and not missing.exists():  # opening it would create an empty one
        given = os.environ.get(DATABASE_URL_ENV, "").strip()
        key = N_("cli.db_missing") if given else N_("cli.db_missing_default")
        ctx.fail(ctx.t(key, path=str(missing)))
    db = Database(url)
    try:
        if migrated:
            try:
                db.require_current()
            except NotMigrated as exc:
                ctx.fail(
                    ctx.t(
                        "cli.db_not_migrated",
                        url=_safe_url(db.url),
                        current=exc.current or "-",
                        head=exc.head,
                    )
                )
        yield db
    finally:
        db.dispose()


def _safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


def operator(args: argparse.Namespace) -> str:
    """Who runs the command, for the audit trail: `--by NAME`, else the login name (never empty)."""
    given = (getattr(args, "by", None) or "").strip()
    if given:
        return given
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):  # no login name anywhere (a bare container)
        return f"uid {os.getuid()}"


def _admin_error(ctx: Context, exc: AdminError) -> NoReturn:
    """The error's message; a deadline it names (`self_assessment_due`, …) by its label."""
    t = ctx.t
    ctx.fail(
        t(exc.key, **{k: t(_DEADLINE_KEYS[v]) if v in _DEADLINE_KEYS else v for k, v in exc.params.items()})
    )


def parse_local_datetime(text: str, *, end_of_day: bool = True) -> dt.datetime:
    """ "15/01/2027" (end of that day) or "15/01/2027 17:00", Asia/Ho_Chi_Minh."""
    text = text.strip()
    for fmt in ("%d/%m/%Y %H:%M", "%d/%m/%Y"):
        try:
            value = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if fmt == "%d/%m/%Y" and end_of_day:
            value = value.replace(hour=23, minute=59)
        return value.replace(tzinfo=VIETNAM_TZ)
    raise ValueError(text)


# -- commands ------------------------------------------------------------------------------------


def cmd_db_upgrade(ctx: Context, args: argparse.Namespace) -> int:
    url = database_url()
    _ensure_sqlite_dir(url)
    before = migrate.current(url)
    migrate.upgrade(url)
    ctx.say(ctx.t("cli.db_upgraded", url=_safe_url(url), before=before or "-", after=migrate.head()))
    return 0


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


# What a database that cannot be reached raises (refused, down, wrong password, not a database file).
UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError)


def unreachable(t: Translator, exc: sa_exc.DBAPIError) -> str | None:
    """The one line an operator gets when the database cannot be used, or None if `exc` is a bug."""
    if not isinstance(exc, UNREACHABLE) and type(exc) is not sa_exc.DatabaseError:
        return None
    problem = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    return t("cli.db_unreachable", url=_safe_url(database_url()), problem=problem)


def cmd_units_import(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    try:
        rows = read_rows(Path(args.file))
    except OSError as exc:
        ctx.fail(t("cli.cannot_read", path=args.file, problem=exc.strerror or str(exc)))
    except (SheetError, UnicodeDecodeError) as exc:
        ctx.fail(t("cli.sheet_unreadable", path=args.file, problem=str(exc)))
    header = [str(c or "").strip().lower() for c in (rows[0] if rows else [])]
    if not {"code", "name", "level"} <= set(header):
        ctx.fail(t("cli.units_header", path=args.file))
    idx: dict[str, int] = {
        name: header.index(name) for name in ("code", "name", "level", "parent") if name in header
    }

    def cell(row: list[object], name: str) -> str:
        i = idx.get(name)
        return str(row[i] or "").strip() if i is not None and i < len(row) else ""

    units = [
        UnitRow(cell(r, "code"), cell(r, "name"), cell(r, "level"), cell(r, "parent") or None)
        for r in rows[1:]
        if any(str(c or "").strip() for c in r)
    ]
    with database(ctx) as db:
        try:
            with db.session() as s:
                created, updated = import_units(s, units, utc_now(), operator(args))
        except AdminError as exc:
            _admin_error(ctx, exc)
    ctx.say(t("cli.units_imported", created=created, updated=updated, total=len(units)))
    return 0


def cmd_period_open(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    framework = catalog.resolve(args.framework).framework if _known(ctx, args.framework) else None
    assert framework is not None
    deadlines: dict[str, dt.datetime | None] = {}
    for name in ("self_assessment_due", "supplement_due", "appraisal_due", "publication_due"):
        raw = getattr(args, name)
        try:
            deadlines[name] = parse_local_datetime(raw) if raw else None
        except ValueError:
            ctx.fail(t("cli.bad_local_datetime", value=raw))
    policy = _policy(ctx, args)
    with database(ctx) as db, db.session() as s:
        try:
            period = open_period(
                s,
                name=args.name,
                year=args.year,
                framework_id=framework.id,
                framework_version=framework.version,
                now=utc_now(),
                self_assessment_due=deadlines["self_assessment_due"],
                supplement_due=deadlines["supplement_due"],
                appraisal_due=deadlines["appraisal_due"],
                publication_due=deadlines["publication_due"],
                reminder_policy_json=json.dumps(policy.to_json()),
                operator=operator(args),
            )
        except AdminError as exc:
            _admin_error(ctx, exc)
        ctx.say(t("cli.period_opened", id=period.id, name=period.name, key=framework.key))
    return 0


def _policy(ctx: Context, args: argparse.Namespace) -> Policy:
    """The reminder policy from --remind-days, --quiet-hours and --weekends (defaults otherwise)."""
    base = Policy()
    bad = ctx.t("cli.bad_policy", days=args.remind_days or "", quiet=args.quiet_hours or "")
    try:
        days = tuple(int(d) for d in args.remind_days.split(",")) if args.remind_days else base.offsets_days
        if args.quiet_hours:
            first, last = args.quiet_hours.split("-")
            start, end = dt.time.fromisoformat(first.strip()), dt.time.fromisoformat(last.strip())
        else:
            start, end = base.quiet_start, base.quiet_end
    except ValueError:
        ctx.fail(bad)
    if any(d < 0 or d > 60 for d in days):
        ctx.fail(bad)
    return dataclasses.replace(
        base, offsets_days=days, quiet_start=start, quiet_end=end, skip_weekends=not args.weekends
    )


def _known(ctx: Context, ref: str) -> bool:
    try:
        catalog.resolve(ref)
    except catalog.UnknownFramework as exc:
        ctx.fail(ctx.t("cli.unknown_framework", ref=ref, known=", ".join(exc.known)))
    return True


_DEADLINE_KEYS = {
    "self_assessment_due": N_("deadline.self_assessment_due"),
    "supplement_due": N_("deadline.supplement_due"),
    "appraisal_due": N_("deadline.appraisal_due"),
    "publication_due": N_("deadline.publication_due"),
}


def cmd_units_list(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db, db.session() as s:
        units = list_units(s, args.level)
    table = [[t(_UNIT_COLUMNS[c]) for c in ("code", "name", "level", "parent", "members")]]
    for u in units:
        table.append([u.code, u.name, t(LEVEL[UnitLevel(u.level)]), u.parent_code or "—", str(u.members)])
    ctx.table(table)
    return 0


_UNIT_COLUMNS = {
    "code": N_("units.col.code"),
    "name": N_("units.col.name"),
    "level": N_("units.col.level"),
    "parent": N_("units.col.parent"),
    "members": N_("units.col.members"),
}
_PERIOD_STATES = {"open": N_("period.state.open"), "closed": N_("period.state.closed")}


def cmd_period_list(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db, db.session() as s:
        periods = list_periods(s)
    if not periods:
        ctx.say(t("admin.no_open_period"))
        return 0
    header = [t("period.col.id"), t("period.col.name"), t("period.col.framework"), t("period.col.state")]
    table = [header + [_capital(t(label)) for label in _DEADLINE_KEYS.values()]]
    for p in periods:
        state = t(_PERIOD_STATES[p.status]) if p.status in _PERIOD_STATES else p.status
        key = f"{p.framework_id}@{p.framework_version}"
        deadlines = [_local(due) if due else "—" for due in (getattr(p, name) for name in _DEADLINE_KEYS)]
        table.append([str(p.id), p.name, key, state, *deadlines])
    ctx.table(table)
    return 0


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def cmd_period_show(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db, db.session() as s:
        try:
            period = period_by_ref(s, args.period)
        except AdminError as exc:
            _admin_error(ctx, exc)
        assert period.id is not None
        policy = Policy.from_json(period.reminder_policy_json)
        key = f"{period.framework_id}@{period.framework_version}"
        state = t(_PERIOD_STATES[period.status]) if period.status in _PERIOD_STATES else period.status
        ctx.say(t("cli.period_line", id=period.id, name=period.name, key=key, status=state))
        for name, label in _DEADLINE_KEYS.items():
            due = getattr(period, name)
            ctx.say(f"  {t(label)}: {_local(due) if due else t('welcome.no_deadline')}")
        ctx.say(
            t(
                "cli.period_policy",
                days=", ".join(str(d) for d in policy.offsets_days),
                hour=policy.send_hour,
                quiet=f"{policy.quiet_start:%H:%M}–{policy.quiet_end:%H:%M}",
                weekends=t("cli.weekends_skipped") if policy.skip_weekends else t("cli.weekends_allowed"),
            )
        )
        for unit, deadline, due, reason in period_extensions(s, period.id):
            label = t(_DEADLINE_KEYS[deadline])
            ctx.say(t("cli.period_extension", unit=unit, deadline=label, due=_local(due), reason=reason))
    return 0


def cmd_period_extend(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    try:
        due = parse_local_datetime(args.to)
    except ValueError:
        ctx.fail(t("cli.bad_local_datetime", value=args.to))
    with database(ctx) as db:
        try:
            with db.session() as s:
                period = period_by_ref(s, args.period)
                actor = operator(args)
                old = extend_deadline(s, period, args.deadline, due, args.reason, utc_now(), args.unit, actor)
        except AdminError as exc:
            _admin_error(ctx, exc)
    ctx.say(
        t(
            "cli.period_extended",
            deadline=t(_DEADLINE_KEYS[args.deadline]),
            scope=args.unit or t("cli.whole_period"),
            old=_local(old) if old else "—",
            new=_local(due),
        )
    )
    return 0


def cmd_remind(ctx: Context, args: argparse.Namespace) -> int:
    """One reminder tick now (for cron), or --dry-run: who would get what at --at."""
    t = ctx.t
    at = utc_now()
    if args.at:
        try:
            at = parse_local_datetime(args.at, end_of_day=False)
        except ValueError:
            ctx.fail(t("cli.bad_local_datetime", value=args.at))
    with database(ctx) as db:
        scheduler = ReminderScheduler(db)
        planned = scheduler.dry_run(at) if args.dry_run else scheduler.tick(at)
    for item in planned:
        state = t("cli.remind_deferred", at=_local(item.send_at)) if item.deferred else t("cli.remind_now")
        ctx.say(
            f"{item.channel}:{item.chat_id} [{item.unit or '-'}] {item.deadline}/{item.offset_key} {state}"
        )
        ctx.say("    " + item.text.replace("\n", "\n    "))
    mode = t("cli.remind_dry") if args.dry_run else t("cli.remind_done")
    ctx.say(t("cli.remind_summary", count=len(planned), at=_local(at), mode=mode))
    return 0


def cmd_invite_create(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db:
        try:
            with db.session() as s:
                invite = create_invite(
                    s, args.unit, args.role, utc_now(), dt.timedelta(days=args.days), operator(args)
                )
                code, expires = invite.code, invite.expires_at
        except AdminError as exc:
            _admin_error(ctx, exc)
    ctx.say(code)
    print(
        t("cli.invite_created", code=code, unit=args.unit, role=args.role, expires=_local(expires)),
        file=ctx.err,
    )
    username = os.environ.get("TELEGRAM_BOT_USERNAME", "").lstrip("@")
    if username:
        ctx.say(f"https://t.me/{username}?start={code}")
    return 0


_INVITE_STATE_KEYS = {
    "unused": N_("invite.state.unused"),
    "used": N_("invite.state.used"),
    "revoked": N_("invite.state.revoked"),
    "expired": N_("invite.state.expired"),
}


_INVITE_COLUMNS = (
    N_("invites.col.id"),
    N_("invites.col.code"),
    N_("invites.col.unit"),
    N_("invites.col.role"),
    N_("invites.col.expires"),
    N_("invites.col.state"),
    N_("invites.col.by"),
)
_MEMBER_COLUMNS = (
    N_("members.col.id"),
    N_("members.col.unit"),
    N_("members.col.role"),
    N_("members.col.chat"),
    N_("members.col.name"),
    N_("members.col.joined"),
    N_("members.col.state"),
)


def cmd_invite_list(ctx: Context, args: argparse.Namespace) -> int:
    """Every invite with its unit, role, expiry and state; the code in full only while it can still be
    handed out (unused), masked once used, revoked or expired."""
    t = ctx.t
    now = utc_now()
    with database(ctx) as db, db.session() as s:
        try:
            invites = list_invites(s, args.unit)
        except AdminError as exc:
            _admin_error(ctx, exc)
    table = [[t(label) for label in _INVITE_COLUMNS]]
    for row in invites:
        invite, state = row.invite, row.state(now)
        table.append(
            [
                str(invite.id),
                invite.code if state == "unused" else masked_code(invite.code),
                f"{row.unit.code} {row.unit.name}",
                t(ROLE.get(invite.role, invite.role)),
                _local(invite.expires_at),
                t(_INVITE_STATE_KEYS[state]),
                invite.created_by or "—",
            ]
        )
    ctx.table(table)
    return 0


def cmd_invite_revoke(ctx: Context, args: argparse.Namespace) -> int:
    code = join_code(args.code) or args.code.strip().upper()
    with database(ctx) as db:
        try:
            with db.session() as s:
                row = revoke_invite(s, code, utc_now(), operator(args))
        except AdminError as exc:
            _admin_error(ctx, exc)
    role = ctx.t(ROLE.get(row.invite.role, row.invite.role))
    ctx.say(ctx.t("cli.invite_revoked", code=code, unit=f"{row.unit.code} {row.unit.name}", role=role))
    return 0


def _member_state(t: Translator, member: Member) -> str:
    if member.removed_at is not None:
        return t("member.state.removed", at=_local(member.removed_at))
    if member.blocked_at is not None:
        return t("member.state.blocked")
    return t("member.state.paused") if member.paused_reminders else t("member.state.active")


def cmd_member_list(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db, db.session() as s:
        try:
            members = list_members(s, args.unit, removed=args.removed)
        except AdminError as exc:
            _admin_error(ctx, exc)
    table = [[t(label) for label in _MEMBER_COLUMNS]]
    for row in members:
        m = row.member
        table.append(
            [
                str(m.id),
                f"{row.unit.code} {row.unit.name}",
                t(ROLE.get(m.role, m.role)),
                f"{m.channel}:{m.chat_id}",
                m.display_name or "—",
                _local(m.created_at),
                _member_state(t, m),
            ]
        )
    ctx.table(table)
    return 0


def cmd_member_remove(ctx: Context, args: argparse.Namespace) -> int:
    """Remove a member: its chat is told (through the outbox, in its language) and from its next
    message on is a stranger's chat, asked for an invite code."""
    t = ctx.t
    with database(ctx) as db:
        try:
            with db.session() as s:
                row = remove_and_tell(s, args.id, utc_now(), operator(args))
                m = row.member
        except AdminError as exc:
            _admin_error(ctx, exc)
    role = t(ROLE.get(m.role, m.role))
    ctx.say(t("cli.member_removed", id=m.id, chat=f"{m.channel}:{m.chat_id}", unit=row.unit.name, role=role))
    return 0


def remove_and_tell(s: Session, member_id: int, now: dt.datetime, by: str | None) -> MemberListing:
    """Remove a member (`storage.admin.remove_member`, audited) and tell its chat through the outbox,
    in its language; the CLI and the web workspace both remove members this way."""
    row = remove_member(s, member_id, now, by)
    m = row.member
    told = Reply((msg(N_("member.removed"), unit=row.unit.name),))
    payload = render(told, m.language, CHANNEL_ESCAPES.get(m.channel, str)).to_json()
    queue_replies(s, m.channel, m.chat_id, m.id, [payload], now)
    return row


def _local(value: dt.datetime) -> str:
    return value.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M")


_COLUMNS = {
    "code": N_("status.col.code"),
    "unit": N_("status.col.unit"),
    "state": N_("status.col.state"),
    "answered": N_("status.col.answered"),
    "evidence": N_("status.col.evidence"),
    "points": N_("status.col.points"),
    "updated": N_("status.col.updated"),
    "reminders": N_("status.col.reminders"),
}
# every state an assessment can be in (storage.models.ASSESSMENT_STATUSES), and its published result
_STATUS_KEYS = {
    "draft": N_("assessment.draft"),
    "awaiting_leader": N_("assessment.awaiting_leader"),
    "submitted": N_("assessment.submitted"),
    "returned": N_("assessment.returned"),
    "appraised": N_("assessment.appraised"),
    "published": N_("assessment.published"),
}


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    """Each unit: state, answered, evidence missing, points, last change, and its reminders."""
    t = ctx.t
    with database(ctx) as db, db.session() as s:
        try:
            period = period_by_ref(s, args.period)
        except AdminError as exc:
            _admin_error(ctx, exc)
        assert period.id is not None
        framework = catalog.framework(f"{period.framework_id}@{period.framework_version}")
        states = unit_states(s, period, framework)
        reminders = ledger_stats(s, period.id)
        published = published_units(s, period.id)
    ctx.say(
        t(
            "cli.status_title",
            name=period.name,
            key=framework.key,
            level=t(LEVEL[framework.level]),
            units=len(states),
        )
    )
    columns = ("code", "unit", "state", "answered", "evidence", "points", "updated", "reminders")
    table = [[t(_COLUMNS[c]) for c in columns]]
    for code, st in states.items():
        r = reminders.get(st.unit.id or 0, LedgerStats())
        state = _STATUS_KEYS["published"] if code in published else _STATUS_KEYS[st.work.status]
        table.append(
            [
                code,
                st.unit.name,
                t(state),
                f"{st.answered}/{len(framework.indicators)}",
                str(len(st.work.evidence_missing)),
                f"{t.number(st.report.total)}/{t.number(st.report.max)}",
                _local(st.updated_at) if st.updated_at else "—",
                f"{r.sent}/{r.pending}/{r.deferred}/{r.undeliverable}",
            ]
        )
    ctx.table(table)
    return 0


def cmd_chat(ctx: Context, args: argparse.Namespace) -> int:
    with database(ctx) as db:
        run_chat(db, args.chat_id, args.join, ctx.out)
    return 0


def run_chat(db: Database, chat_id: str, join: str | None, out: object) -> None:
    store = EvidenceStore(evidence_dir())
    interactive = sys.stdin.isatty()
    channel = ConsoleChannel(Service(db), store, chat_id, out, echo=not interactive)  # type: ignore[arg-type]
    if interactive:
        t = Translator(os.environ.get("DTI_LANG", "vi"))
        print(t("console.intro"), file=out)  # type: ignore[call-overload]
    channel.run(_lines(interactive), join)


def _lines(interactive: bool) -> Iterator[str]:
    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            yield input("> ")
        except EOFError:
            return


DEMO_FILE = Path(__file__).resolve().parent / "demo" / "demo-province.json"


def _end_of_day(now: dt.datetime, days: int) -> dt.datetime:
    """17:00 Vietnam time, `days` days from `now`: when an office's deadline falls."""
    local = (now + dt.timedelta(days=days)).astimezone(VIETNAM_TZ)
    return local.replace(hour=17, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    """The demo province of bot/demo/demo-province.json, then a console chat as one of its respondents."""
    t = ctx.t
    demo = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    units = [UnitRow(u["code"], u["name"], u["level"], u["parent"]) for u in demo["units"]]
    url = database_url()
    _ensure_sqlite_dir(url)
    migrate.upgrade(url)
    now = utc_now()
    with database(ctx) as db:
        with db.session() as s:
            if s.exec(select(Unit).where(Unit.code == units[0].code)).first() is None:
                import_units(s, units, now, operator(args))
                framework = catalog.framework(demo["framework"])
                p = demo["period"]
                open_period(
                    s,
                    name=p["name"],
                    year=p["year"],
                    framework_id=framework.id,
                    framework_version=framework.version,
                    now=now,
                    self_assessment_due=_end_of_day(now, p["self_assessment_days"]),
                    supplement_due=_end_of_day(now, p["supplement_days"]),
                    operator=operator(args),
                )
            joined = s.exec(
                select(Member).where(
                    Member.channel == "console",
                    Member.chat_id == args.chat_id,
                    col(Member.removed_at).is_(None),
                )
            ).first()
            by = operator(args)
            fortnight = dt.timedelta(days=14)
            code = (
                None
                if joined
                else create_invite(s, demo["respondent_unit"], "respondent", now, fortnight, by).code
            )
            leader = create_invite(s, demo["respondent_unit"], "leader", now, fortnight, by).code
        print(t("cli.demo_ready", url=_safe_url(url)), file=ctx.err)
        print("  " + _leader_command(url, leader), file=ctx.err)
        link = web_cli.demo_admin_link(db, units[0].code, by)
        if link is not None:
            print(t("cli.demo_web", minutes=LINK_MINUTES), file=ctx.err)
            print("  " + _demo_command(url, "run web"), file=ctx.err)
            print("  " + link, file=ctx.err)
        run_chat(db, args.chat_id, code, ctx.out)
    return 0


def _leader_command(url: str, code: str) -> str:
    """The command that joins a second terminal to the demo as its leader, runnable as printed from
    any directory: the demo's database and evidence, and this installation's `dtibot`."""
    return _demo_command(url, f"chat --as lanhdao --join {code}")


def _demo_command(url: str, arguments: str) -> str:
    """`dtibot ARGUMENTS` on the demo's database and evidence, runnable as printed from anywhere."""
    installed = Path(sys.executable).parent / "dtibot"
    program = str(installed) if installed.exists() else "dtibot"
    # a password is not printed: the operator's own exported variable stands for it
    shown = '"$DTI_DATABASE_URL"' if _safe_url(url) != url else shlex.quote(url)
    return (
        f"DTI_DATABASE_URL={shown} DTI_EVIDENCE_DIR={shlex.quote(str(evidence_dir().resolve()))} "
        f"{shlex.quote(program)} {arguments}"
    )


def _env_number(name: str) -> float | None:
    """A number from the environment, decimal comma or point; None when unset, NaN when not a number."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return math.nan


def _telegram_pace(ctx: Context) -> Pace:
    """Telegram's limits, or the operator's (`TELEGRAM_RATE` per second, `TELEGRAM_CHAT_INTERVAL` s)."""
    from bot.outbox import Pace

    default = Pace()
    rate = _env_number("TELEGRAM_RATE")
    interval = _env_number("TELEGRAM_CHAT_INTERVAL")
    pace = Pace(
        default.per_second if rate is None else rate,
        default.chat_interval if interval is None else interval,
    )
    if not (0 < pace.per_second < math.inf and 0 <= pace.chat_interval < math.inf):
        shown = [os.environ.get(k, "").strip() or "-" for k in ("TELEGRAM_RATE", "TELEGRAM_CHAT_INTERVAL")]
        ctx.fail(ctx.t("cli.telegram_pace", rate=shown[0], interval=shown[1]))
    return pace


def _outbox_lease(ctx: Context) -> dt.timedelta:
    """How long an outbox claim lasts unrenewed (`DTI_OUTBOX_LEASE` seconds): then its sender is dead."""
    from storage.outbox import STALE_CLAIM

    seconds = _env_number("DTI_OUTBOX_LEASE")
    if seconds is None:
        return STALE_CLAIM
    if not 0 < seconds < 86_400:  # false for NaN too
        ctx.fail(ctx.t("cli.outbox_lease", value=os.environ["DTI_OUTBOX_LEASE"].strip()))
    return dt.timedelta(seconds=seconds)


def _db_process(ctx: Context, db: Database) -> bool:
    """Whether the bot handles its messages' database work in a process of its own
    (bot/db_process.py): `DTI_DB_PROCESS`, on unless set to 0; never for an in-memory database,
    which another process cannot open."""
    raw = os.environ.get("DTI_DB_PROCESS", "").strip().lower()
    if raw not in ("", "1", "0", "on", "off", "yes", "no", "true", "false"):
        ctx.fail(ctx.t("cli.db_process", value=os.environ["DTI_DB_PROCESS"].strip()))
    in_memory = db.engine.dialect.name == "sqlite" and db.engine.url.database in (None, "", ":memory:")
    return raw not in ("0", "off", "no", "false") and not in_memory


def _early_service(ctx: Context, db: Database, escapes: dict[str, Callable[[str], str]]) -> Service:
    """The bot's service, its database process (if on) started now: its imports (about a second) then
    run on another core while this process imports aiogram, instead of delaying the first reply."""
    from bot.service import Service

    service = Service(db, escapes=escapes, db_process=_db_process(ctx, db))
    if service.db_process:
        service.database_process().start()
    return service


def cmd_run_telegram(ctx: Context, args: argparse.Namespace) -> int:
    """Run the Telegram bot until interrupted: long polling, or a webhook server with --webhook."""
    import asyncio
    import signal

    from bot.render.reply import escape_html

    token = os.environ.get("TELEGRAM_BOT_TOKEN", "")
    if not token:
        ctx.fail(ctx.t("cli.telegram_token"))
    pace = _telegram_pace(ctx)
    lease = _outbox_lease(ctx)
    with database(ctx) as db:
        service = _early_service(ctx, db, {"telegram": escape_html})
        try:
            from bot.channels.telegram import BadToken, make_bot
            from bot.channels.telegram_app import StartRefused, TelegramApp

            async def serve() -> None:
                try:
                    bot = make_bot(token, os.environ.get("TELEGRAM_API_URL") or None)
                except BadToken:
                    ctx.fail(ctx.t("cli.telegram_token_malformed"))
                store = EvidenceStore(evidence_dir())
                app = TelegramApp(db, bot, store, pace=pace, lease=lease, given_service=service)
                stop = app.stopping  # a signal also ends the wait for an unreachable Telegram at start
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                runner = None
                try:
                    if args.webhook:
                        secret = os.environ.get("TELEGRAM_WEBHOOK_SECRET") or None
                        runner = await app.start_webhook(
                            args.webhook, args.path, args.host, args.port, secret
                        )
                    else:
                        await app.start_polling()
                except StartRefused as exc:
                    await app.stop()
                    ctx.fail(ctx.t("cli.telegram_token_refused", error=str(exc)))
                if not stop.is_set():  # else stopped while waiting for Telegram at start
                    heap.settle()  # started: what lives now lives as long as the process
                    print(ctx.t("cli.telegram_running", mode=args.webhook or "polling"), file=ctx.err)
                await stop.wait()
                await app.stop()
                if runner is not None:
                    await runner.cleanup()

            asyncio.run(serve())
        finally:
            service.close()
    return 0


def _period(ctx: Context, db: Database, ref: str | None) -> Period:
    with db.session() as s:
        try:
            return period_by_ref(s, ref)
        except AdminError as exc:
            ctx.fail(ctx.t(exc.key, **exc.params))


def cmd_results_compute(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db:
        result = compute(db, _period(ctx, db, args.period), operator=operator(args))
    ctx.say(t("cli.results_computed", units=len(result.rows), key=result.framework.key))
    for r in result.rows:
        note = "" if r["appraised"] else " " + t("export.not_appraised")
        band = f" · {r['band']}" if r["band"] else ""
        points = f"{t.number(Decimal(r['total']))}/{t.number(Decimal(r['max']))}"
        ctx.say(f"{r['rank']:>4}  {r['name']}{note}  {points}{band}")
    return 0


def cmd_results_publish(ctx: Context, args: argparse.Namespace) -> int:
    """Publish the computed results: refused before the appraisal deadline or while appraisals are
    open, unless --force, which first says what publishing now does (who gets 0 and why)."""
    t = ctx.t
    with database(ctx) as db:
        period = _period(ctx, db, args.period)
        try:
            early = premature(db, period)
            if early and not args.force:
                ctx.fail(*_premature_lines(t, early), t("cli.publish_refused"))
            for line in _premature_lines(t, early):
                ctx.say(line)
            done = publish_results(db, period, operator(args))
        except NothingComputed:
            ctx.fail(t("cli.results_not_computed", period=period.id))
    ctx.say(t("cli.results_published", id=done.id, messages=done.messages, unchanged=done.unchanged))
    return 0


def _premature_lines(t: Translator, early: Premature) -> list[str]:
    lines = []
    if early.appraisal_due is not None:
        lines.append(t("cli.publish_before_deadline", due=_local(early.appraisal_due)))
    if early.open_units:
        lines.append(t("cli.publish_open_units", count=len(early.open_units)))
        lines += [
            f"  {code} {name} ({t(_STATUS_KEYS[state or 'draft'])})" for code, name, state in early.open_units
        ]
    return lines


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    from bot.exports import audit_csv, evidence_zip, results_workbook  # openpyxl: only for exports

    t = ctx.t
    out = Path(args.out)
    with database(ctx) as db:
        period = _period(ctx, db, args.period)
        try:
            if args.what == "results":
                count = results_workbook(db, period, out, t)  # NothingComputed before `results compute`
            elif args.what == "evidence":
                if not args.unit:
                    ctx.fail(t("cli.export_unit_required"))
                count = evidence_zip(db, EvidenceStore(evidence_dir()), period, args.unit, out, t)
            else:
                count = audit_csv(db, period, out, t)
        except OSError as exc:
            ctx.fail(t("cli.cannot_write", path=str(out), problem=exc.strerror or str(exc)))
        except NothingComputed:
            ctx.fail(t("cli.results_not_computed", period=period.id))
    ctx.say(t("cli.exported", path=str(out), count=count))
    return 0


def zalo_config(ctx: Context) -> ZaloConfig:
    """The OA's settings from the environment; the signature secret is the OA secret key or the
    app secret, as the OA's webhook settings say (`ZALO_SIGNATURE_SECRET`)."""
    env = os.environ
    missing = [k for k in ("ZALO_APP_ID", "ZALO_APP_SECRET", "ZALO_SIGNATURE_SECRET") if not env.get(k)]
    if missing:
        ctx.fail(ctx.t("cli.zalo_settings", missing=", ".join(missing)))
    return ZaloConfig(
        app_id=env["ZALO_APP_ID"],
        app_secret=env["ZALO_APP_SECRET"],
        signature_secret=env["ZALO_SIGNATURE_SECRET"],
        api_base=env.get("ZALO_API_URL", "https://openapi.zalo.me"),
        oauth_base=env.get("ZALO_OAUTH_URL", "https://oauth.zaloapp.com"),
        template_id=env.get("ZALO_ZNS_TEMPLATE_ID") or None,
        template_param=env.get("ZALO_ZNS_TEXT_PARAM", "content"),
    )


def cmd_run_zalo(ctx: Context, args: argparse.Namespace) -> int:
    import asyncio
    import signal

    config = zalo_config(ctx)
    lease = _outbox_lease(ctx)
    with database(ctx) as db:
        service = _early_service(ctx, db, {})
        try:
            from bot.channels.zalo_app import ZaloApp

            async def serve() -> None:
                app = ZaloApp(db, EvidenceStore(evidence_dir()), config, lease=lease, given_service=service)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                port = await app.start(args.host, args.port, args.path)
                heap.settle()
                print(ctx.t("cli.zalo_running", host=args.host, port=port, path=args.path), file=ctx.err)
                await stop.wait()
                await app.stop()

            asyncio.run(serve())
        finally:
            service.close()
    return 0


def cmd_zalo_token(ctx: Context, args: argparse.Namespace) -> int:
    if args.access is not None or args.refresh is not None:  # anyone on the machine could read them
        ctx.fail(ctx.t("cli.zalo_token_flags"))
    access, refresh = _token_pair(ctx)
    with database(ctx) as db, db.session() as s:
        now = utc_now()
        save_token(s, access, refresh, now + dt.timedelta(seconds=args.expires_in), now)
    ctx.say(ctx.t("cli.zalo_token_saved", expires=_local(now + dt.timedelta(seconds=args.expires_in))))
    return 0


TOKEN_ENV = ("ZALO_ACCESS_TOKEN", "ZALO_REFRESH_TOKEN")


def _token_pair(ctx: Context) -> tuple[str, str]:
    """The OA's token pair from `ZALO_ACCESS_TOKEN` and `ZALO_REFRESH_TOKEN`, else from standard input
    (two lines, or one line `ACCESS REFRESH`; asked for without echo on a terminal): never from the
    command line, which `ps` and the shell history show."""
    t = ctx.t
    given = [os.environ.get(name, "").strip() for name in TOKEN_ENV]
    if any(given):
        words = given if all(given) else []
    elif sys.stdin.isatty():
        words = [
            getpass.getpass(t("cli.zalo_token_ask_access")),
            getpass.getpass(t("cli.zalo_token_ask_refresh")),
        ]
        words = [w.strip() for w in words]
    else:
        words = sys.stdin.read().split()
    if len(words) != 2 or not all(words):
        ctx.fail(t("cli.zalo_token_pair"))
    return words[0], words[1]


def cmd_zalo_status(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db, db.session() as s:
        row = zalo_token(s)
        counts = status_counts(s, "zalo")
        waiting, oldest = held_count(s, "zalo")
    if row is None:
        ctx.say(t("cli.zalo_no_token"))
        return 2
    if row.failed_at is not None:
        ctx.say(t("cli.zalo_token_refused", at=_local(row.failed_at), error=row.error or ""))
        ctx.say(t("cli.zalo_reauthorise"))
    else:
        ctx.say(
            t(
                "cli.zalo_token_ok",
                expires=_local(row.expires_at),
                refreshed=_local(row.refreshed_at) if row.refreshed_at else "—",
            )
        )
    ctx.say(t("cli.outbox_counts", counts=", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "—"))
    if waiting:
        ctx.say(t("cli.zalo_held", count=waiting, oldest=_local(oldest) if oldest else "—"))
    return 2 if row.failed_at is not None else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], t: Translator) -> None:
    db = sub.add_parser("db", help=t("cli.help.db"))
    dsub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    dsub.add_parser("upgrade", help=t("cli.help.db_upgrade")).set_defaults(func=cmd_db_upgrade)

    units = sub.add_parser("units", help=t("cli.help.units"))
    usub = units.add_subparsers(dest="action", required=True, metavar="ACTION")
    ui = usub.add_parser("import", help=t("cli.help.units_import"))
    ui.add_argument("file", metavar="UNITS.csv")
    ui.set_defaults(func=cmd_units_import)
    ul = usub.add_parser("list", help=t("cli.help.units_list"))
    ul.add_argument("--level", choices=[u.value for u in UnitLevel])
    ul.set_defaults(func=cmd_units_list)

    period = sub.add_parser("period", help=t("cli.help.period"))
    psub = period.add_subparsers(dest="action", required=True, metavar="ACTION")
    po = psub.add_parser("open", help=t("cli.help.period_open"))
    po.add_argument("--name", required=True)
    po.add_argument("--year", type=int, required=True)
    po.add_argument("--framework", required=True, metavar="ID")
    for name in ("self-assessment-due", "supplement-due", "appraisal-due", "publication-due"):
        po.add_argument(f"--{name}", metavar="DD/MM/YYYY[ HH:MM]")
    po.add_argument("--remind-days", metavar="7,3,1,0", help=t("cli.help.remind_days"))
    po.add_argument("--quiet-hours", metavar="21:00-07:00", help=t("cli.help.quiet_hours"))
    po.add_argument("--weekends", action="store_true", help=t("cli.help.weekends"))
    po.set_defaults(func=cmd_period_open)
    psub.add_parser("list", help=t("cli.help.period_list")).set_defaults(func=cmd_period_list)
    ps = psub.add_parser("show", help=t("cli.help.period_show"))
    ps.add_argument("--period", metavar="P")
    ps.set_defaults(func=cmd_period_show)
    pe = psub.add_parser("extend", help=t("cli.help.period_extend"))
    pe.add_argument("--period", metavar="P")
    pe.add_argument("--unit", metavar="CODE", help=t("cli.help.extend_unit"))
    pe.add_argument("--deadline", required=True, choices=list(_DEADLINE_KEYS))
    pe.add_argument("--to", required=True, metavar="DD/MM/YYYY[ HH:MM]")
    pe.add_argument("--reason", required=True)
    pe.set_defaults(func=cmd_period_extend)

    rm = sub.add_parser("remind", help=t("cli.help.remind"))
    rm.add_argument("--dry-run", action="store_true")
    rm.add_argument("--at", metavar="DD/MM/YYYY HH:MM")
    rm.set_defaults(func=cmd_remind)

    invite = sub.add_parser("invite", help=t("cli.help.invite"))
    isub = invite.add_subparsers(dest="action", required=True, metavar="ACTION")
    ic = isub.add_parser("create", help=t("cli.help.invite_create"))
    ic.add_argument("--unit", required=True, metavar="CODE")
    ic.add_argument("--role", required=True, choices=ROLES)
    ic.add_argument("--days", type=int, default=14)
    ic.set_defaults(func=cmd_invite_create)
    il = isub.add_parser("list", help=t("cli.help.invite_list"))
    il.add_argument("--unit", metavar="CODE")
    il.set_defaults(func=cmd_invite_list)
    ir = isub.add_parser("revoke", help=t("cli.help.invite_revoke"))
    ir.add_argument("code", metavar="CODE")
    ir.set_defaults(func=cmd_invite_revoke)

    member = sub.add_parser("member", help=t("cli.help.member"))
    msub = member.add_subparsers(dest="action", required=True, metavar="ACTION")
    ml = msub.add_parser("list", help=t("cli.help.member_list"))
    ml.add_argument("--unit", metavar="CODE")
    ml.add_argument("--removed", action="store_true", help=t("cli.help.member_removed"))
    ml.set_defaults(func=cmd_member_list)
    mr = msub.add_parser("remove", help=t("cli.help.member_remove"))
    mr.add_argument("id", type=int, metavar="ID")
    mr.set_defaults(func=cmd_member_remove)

    st = sub.add_parser("status", help=t("cli.help.status"))
    st.add_argument("--period", metavar="P")
    st.set_defaults(func=cmd_status)

    chat = sub.add_parser("chat", help=t("cli.help.chat"))
    chat.add_argument("--as", dest="chat_id", default="console", metavar="CHAT_ID")
    chat.add_argument("--join", metavar="CODE")
    chat.set_defaults(func=cmd_chat)

    results = sub.add_parser("results", help=t("cli.help.results"))
    ressub = results.add_subparsers(dest="action", required=True, metavar="ACTION")
    rc = ressub.add_parser("compute", help=t("cli.help.results_compute"))
    rc.add_argument("--period", metavar="P")
    rc.set_defaults(func=cmd_results_compute)
    rp = ressub.add_parser("publish", help=t("cli.help.results_publish"))
    rp.add_argument("--period", metavar="P")
    rp.add_argument("--force", action="store_true", help=t("cli.help.publish_force"))
    rp.set_defaults(func=cmd_results_publish)

    export = sub.add_parser("export", help=t("cli.help.export"))
    export.add_argument("what", choices=("results", "evidence", "audit"))
    export.add_argument("--period", metavar="P")
    export.add_argument("--unit", metavar="CODE")
    export.add_argument("--out", required=True, metavar="FILE")
    export.set_defaults(func=cmd_export)

    run = sub.add_parser("run", help=t("cli.help.run"))
    rsub = run.add_subparsers(dest="channel", required=True, metavar="CHANNEL")
    tg = rsub.add_parser("telegram", help=t("cli.help.run_telegram"))
    tg.add_argument("--webhook", metavar="URL", help=t("cli.help.webhook"))
    tg.add_argument("--host", default="127.0.0.1")
    tg.add_argument("--port", type=int, default=8080)
    tg.add_argument("--path", default="/telegram/webhook")
    tg.set_defaults(func=cmd_run_telegram)
    zr = rsub.add_parser("zalo", help=t("cli.help.run_zalo"))
    zr.add_argument("--host", default="127.0.0.1")
    zr.add_argument("--port", type=int, default=8081)
    zr.add_argument("--path", default="/zalo/webhook")
    zr.set_defaults(func=cmd_run_zalo)
    web_cli.register(sub, rsub, t)

    zalo = sub.add_parser("zalo", help=t("cli.help.zalo"))
    zsub = zalo.add_subparsers(dest="action", required=True, metavar="ACTION")
    zt = zsub.add_parser("token", help=t("cli.help.zalo_token"))
    zt.add_argument("--access", help=argparse.SUPPRESS)  # refused: see cmd_zalo_token
    zt.add_argument("--refresh", help=argparse.SUPPRESS)
    zt.add_argument("--expires-in", type=int, default=90000, metavar="SECONDS")
    zt.set_defaults(func=cmd_zalo_token)
    zsub.add_parser("status", help=t("cli.help.zalo_status")).set_defaults(func=cmd_zalo_status)

    demo = sub.add_parser("demo", help=t("cli.help.demo"))
    demo.add_argument("--as", dest="chat_id", default="demo", metavar="CHAT_ID")
    demo.set_defaults(func=cmd_demo)
