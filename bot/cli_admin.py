"""`dtibot` commands that work on the database: migrations, units, periods, invites, status, chat, demo.

Every command but `db upgrade` refuses to run on a database that is not at the latest migration and
says which command fixes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import select

from bot import catalog
from bot.channels.console import ConsoleChannel
from bot.i18n import Translator
from bot.render.labels import LEVEL
from bot.service import Service, utc_now
from bot.sheets import SheetError, read_rows
from scoring.answers import VIETNAM_TZ, Answer, Evidence, decode_value
from scoring.engine import Rules, Status, score
from scoring.messages import N_
from storage import migrate
from storage.admin import (
    AdminError,
    UnitRow,
    create_invite,
    import_units,
    open_period,
    period_by_ref,
    progress,
)
from storage.db import Database, NotMigrated, database_url
from storage.evidence import EvidenceStore, evidence_dir
from storage.models import ROLES, Member, Unit

if TYPE_CHECKING:
    from bot.cli import Context

Command = Callable[["Context", argparse.Namespace], int]


@contextmanager
def database(ctx: Context, *, migrated: bool = True) -> Iterator[Database]:
    db = Database(database_url())
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


def _admin_error(ctx: Context, exc: AdminError) -> None:
    ctx.fail(ctx.t(exc.key, **exc.params))


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
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)


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
                created, updated = import_units(s, units, utc_now())
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
    with database(ctx) as db, db.session() as s:
        period = open_period(
            s,
            name=args.name,
            year=args.year,
            framework_id=framework.id,
            framework_version=framework.version,
            now=utc_now(),
            **deadlines,
        )
        ctx.say(t("cli.period_opened", id=period.id, name=period.name, key=framework.key))
    return 0


def _known(ctx: Context, ref: str) -> bool:
    try:
        catalog.resolve(ref)
    except catalog.UnknownFramework as exc:
        ctx.fail(ctx.t("cli.unknown_framework", ref=ref, known=", ".join(exc.known)))
    return True


def cmd_invite_create(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db:
        try:
            with db.session() as s:
                invite = create_invite(
                    s, args.unit, args.role, utc_now(), dt.timedelta(days=args.days), os.environ.get("USER")
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
}
_STATUS_KEYS = {
    "draft": N_("assessment.draft"),
    "awaiting_leader": N_("assessment.awaiting_leader"),
    "submitted": N_("assessment.submitted"),
}


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    with database(ctx) as db, db.session() as s:
        try:
            period = period_by_ref(s, args.period)
        except AdminError as exc:
            _admin_error(ctx, exc)
        framework = catalog.framework(f"{period.framework_id}@{period.framework_version}")
        rows = progress(s, period, framework.level.value)
    ctx.say(
        t(
            "cli.status_title",
            name=period.name,
            key=framework.key,
            level=t(LEVEL[framework.level]),
            units=len(rows),
        )
    )
    columns = ("code", "unit", "state", "answered", "evidence", "points", "updated")
    table = [[t(_COLUMNS[c]) for c in columns]]
    for row in rows:
        answers: dict[str, Answer] = {}
        for code, (value_json, na) in row.answers.items():
            ind = framework.indicator(code)
            if ind is None:
                continue
            value = decode_value(ind, json.loads(value_json)) if value_json else None
            evidence = (Evidence(code),) if code in row.with_evidence else ()
            answers[code] = Answer(value, na, evidence)
        report = score(framework, answers, Rules())
        table.append(
            [
                row.code,
                row.name,
                t(_STATUS_KEYS.get(row.status, N_("assessment.draft"))),
                f"{len(answers)}/{len(framework.indicators)}",
                str(report.count(Status.EVIDENCE_MISSING)),
                f"{t.number(report.total)}/{t.number(report.max)}",
                _local(row.updated_at) if row.updated_at else "—",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        ctx.say("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
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
                import_units(s, units, now)
                framework = catalog.framework(demo["framework"])
                p = demo["period"]
                open_period(
                    s,
                    name=p["name"],
                    year=p["year"],
                    framework_id=framework.id,
                    framework_version=framework.version,
                    now=now,
                    self_assessment_due=now + dt.timedelta(days=p["self_assessment_days"]),
                    supplement_due=now + dt.timedelta(days=p["supplement_days"]),
                )
            joined = s.exec(
                select(Member).where(Member.channel == "console", Member.chat_id == args.chat_id)
            ).first()
            code = None if joined else create_invite(s, demo["respondent_unit"], "respondent", now).code
            leader = create_invite(s, demo["respondent_unit"], "leader", now).code
        print(t("cli.demo_ready", url=_safe_url(url), leader=leader), file=ctx.err)
        run_chat(db, args.chat_id, code, ctx.out)
    return 0


def cmd_run_telegram(ctx: Context, args: argparse.Namespace) -> int:
    """Run the Telegram bot until interrupted: long polling, or a webhook server with --webhook."""
    import asyncio
    import signal

    from bot.channels.telegram import make_bot
    from bot.channels.telegram_app import TelegramApp

    token = os.environ.get("TELEGRAM_BOT_TOKEN", "")
    if not token:
        ctx.fail(ctx.t("cli.telegram_token"))
    with database(ctx) as db:

        async def serve() -> None:
            bot = make_bot(token, os.environ.get("TELEGRAM_API_URL") or None)
            app = TelegramApp(db, bot, EvidenceStore(evidence_dir()))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            runner = None
            if args.webhook:
                secret = os.environ.get("TELEGRAM_WEBHOOK_SECRET") or None
                runner = await app.start_webhook(args.webhook, args.path, args.host, args.port, secret)
            else:
                await app.start_polling()
            print(ctx.t("cli.telegram_running", mode=args.webhook or "polling"), file=ctx.err)
            await stop.wait()
            await app.stop()
            if runner is not None:
                await runner.cleanup()

        asyncio.run(serve())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], t: Translator) -> None:
    db = sub.add_parser("db", help=t("cli.help.db"))
    dsub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    dsub.add_parser("upgrade", help=t("cli.help.db_upgrade")).set_defaults(func=cmd_db_upgrade)

    units = sub.add_parser("units", help=t("cli.help.units"))
    usub = units.add_subparsers(dest="action", required=True, metavar="ACTION")
    ui = usub.add_parser("import", help=t("cli.help.units_import"))
    ui.add_argument("file", metavar="UNITS.csv")
    ui.set_defaults(func=cmd_units_import)

    period = sub.add_parser("period", help=t("cli.help.period"))
    psub = period.add_subparsers(dest="action", required=True, metavar="ACTION")
    po = psub.add_parser("open", help=t("cli.help.period_open"))
    po.add_argument("--name", required=True)
    po.add_argument("--year", type=int, required=True)
    po.add_argument("--framework", required=True, metavar="ID")
    for name in ("self-assessment-due", "supplement-due", "appraisal-due", "publication-due"):
        po.add_argument(f"--{name}", metavar="DD/MM/YYYY[ HH:MM]")
    po.set_defaults(func=cmd_period_open)

    invite = sub.add_parser("invite", help=t("cli.help.invite"))
    isub = invite.add_subparsers(dest="action", required=True, metavar="ACTION")
    ic = isub.add_parser("create", help=t("cli.help.invite_create"))
    ic.add_argument("--unit", required=True, metavar="CODE")
    ic.add_argument("--role", required=True, choices=ROLES)
    ic.add_argument("--days", type=int, default=14)
    ic.set_defaults(func=cmd_invite_create)

    st = sub.add_parser("status", help=t("cli.help.status"))
    st.add_argument("--period", metavar="P")
    st.set_defaults(func=cmd_status)

    chat = sub.add_parser("chat", help=t("cli.help.chat"))
    chat.add_argument("--as", dest="chat_id", default="console", metavar="CHAT_ID")
    chat.add_argument("--join", metavar="CODE")
    chat.set_defaults(func=cmd_chat)

    run = sub.add_parser("run", help=t("cli.help.run"))
    rsub = run.add_subparsers(dest="channel", required=True, metavar="CHANNEL")
    tg = rsub.add_parser("telegram", help=t("cli.help.run_telegram"))
    tg.add_argument("--webhook", metavar="URL", help=t("cli.help.webhook"))
    tg.add_argument("--host", default="127.0.0.1")
    tg.add_argument("--port", type=int, default=8080)
    tg.add_argument("--path", default="/telegram/webhook")
    tg.set_defaults(func=cmd_run_telegram)

    demo = sub.add_parser("demo", help=t("cli.help.demo"))
    demo.add_argument("--as", dest="chat_id", default="demo", metavar="CHAT_ID")
    demo.set_defaults(func=cmd_demo)
