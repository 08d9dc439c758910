"""`dtibot run web` (the workspace's server) and `dtibot web link --member ID` (a sign-in link printed
for an operator, e.g. for the first province admin, who has no one to ask yet)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
from typing import TYPE_CHECKING

from bot.service import Service, utc_now, web_url
from flows.web import LINK_MINUTES, link_url, token_digest
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
            app = make_app(db, EvidenceStore(evidence_dir()), service)

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
