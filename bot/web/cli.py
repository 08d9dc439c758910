"""`dtibot run web` (the workspace's server) and `dtibot web link --member ID` (a sign-in link printed
for an operator, e.g. for the first province admin, who has no one to ask yet)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.service import Service, utc_now, web_url
from flows.model import Inbound, InboundKind
from flows.web import LINK_MINUTES, link_url, token_digest
from storage.admin import create_invite
from storage.db import Database
from storage.evidence import EvidenceStore, evidence_dir
from storage.models import Member
from storage.web import operator_link

if TYPE_CHECKING:
    from bot.cli import Context


def issue_link(db: Database, member_id: int, by: str, now: dt.datetime | None = None) -> str | None:
    """A fresh single-use sign-in link for the member (None: no such member, or removed)."""
    now = now or utc_now()
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        member = s.get(Member, member_id)
        if member is None or member.removed_at is not None:
            return None
        operator_link(s, member_id, token_digest(token), now, now + dt.timedelta(minutes=LINK_MINUTES), by)
    return link_url(web_url(), token)


DEMO_ADMIN_CHAT = "demo-admin"


def demo_admin_link(db: Database, province_code: str, by: str) -> str | None:
    """The demo province's admin (joined once, through the console chat, like anyone joining) and a
    fresh sign-in link for them."""
    now = utc_now()
    with db.session() as s:
        member = s.exec(
            select(Member).where(
                Member.channel == "console",
                Member.chat_id == DEMO_ADMIN_CHAT,
                col(Member.removed_at).is_(None),
            )
        ).first()
        code = (
            None
            if member is not None
            else create_invite(s, province_code, "admin", now, dt.timedelta(hours=1), by).code
        )
    if code is not None:
        Service(db).handle("console", DEMO_ADMIN_CHAT, None, Inbound(InboundKind.TEXT, text=code))
        with db.session() as s:
            member = s.exec(
                select(Member).where(Member.channel == "console", Member.chat_id == DEMO_ADMIN_CHAT)
            ).first()
    if member is None or member.id is None:
        return None
    return issue_link(db, member.id, by, now)


def cmd_web_link(ctx: Context, args: argparse.Namespace) -> int:
    from bot.cli_admin import database, operator

    with database(ctx) as db:
        link = issue_link(db, args.member, operator(args))
    if link is None:
        ctx.fail(ctx.t("cli.web_no_member", member=args.member))
    ctx.say(link)
    ctx.say(ctx.t("cli.web_link_note", minutes=LINK_MINUTES))
    return 0


def cmd_run_web(ctx: Context, args: argparse.Namespace) -> int:
    from bot.cli_admin import database
    from bot.web.app import make_app, serve

    with database(ctx) as db:
        service = Service(db)
        try:
            app = make_app(db, EvidenceStore(evidence_dir()), service, warm=True)

            def ready(port: int) -> None:
                ctx.err.write(
                    ctx.t("cli.web_running", url=f"http://{args.host}:{port}", public=web_url()) + "\n"
                )
                ctx.err.flush()

            asyncio.run(serve(app, args.host, args.port, ready))
        finally:
            service.close()
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    run: argparse._SubParsersAction[argparse.ArgumentParser],
    t: object,
) -> None:
    """`run web` under `run`, and the `web` command group."""
    from bot.i18n import Translator

    assert isinstance(t, Translator)
    wr = run.add_parser("web", help=t("cli.help.run_web"))
    wr.add_argument("--host", default="127.0.0.1")
    wr.add_argument("--port", type=int, default=8090)
    wr.set_defaults(func=cmd_run_web)
    web = sub.add_parser("web", help=t("cli.help.web"))
    wsub = web.add_subparsers(dest="action", required=True, metavar="ACTION")
    wl = wsub.add_parser("link", help=t("cli.help.web_link"))
    wl.add_argument("--member", type=int, required=True, metavar="ID")
    wl.add_argument("--by", metavar="NAME")
    wl.set_defaults(func=cmd_web_link)
