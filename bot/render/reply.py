"""The engine's replies as text and buttons in the member's language.

Parameters are formatted here: decimals with a decimal comma in Vietnamese ("7,04"), dates as
dd/mm/yyyy, times in Asia/Ho_Chi_Minh, nested messages rendered in turn. Text that comes from users
or framework files passes through the channel's `escape` (HTML for Telegram), never the templates.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from bot.i18n import Translator
from bot.render.chart import render_chart
from flows.model import Fixed, Msg, Param, Reply
from scoring.answers import VIETNAM_TZ


@dataclass(frozen=True)
class RenderedButton:
    label: str
    payload: str


@dataclass(frozen=True)
class Rendered:
    text: str
    buttons: tuple[RenderedButton, ...] = ()
    image: bytes | None = None  # a PNG (the score chart)
    files: tuple[tuple[str, str], ...] = ()  # stored evidence to send along: (sha256, name)


def _identity(text: str) -> str:
    return text


def escape_html(text: str) -> str:
    """User and framework text inside Telegram's HTML parse mode."""
    return html.escape(text, quote=False)


CHANNEL_ESCAPES: dict[str, Callable[[str], str]] = {"telegram": escape_html}  # HTML parse mode on Telegram


class ReplyRenderer:
    def __init__(self, t: Translator, escape: Callable[[str], str] = _identity) -> None:
        self.t = t
        self.escape = escape

    def param(self, value: Param) -> str:
        if type(value) is str:  # most parameters: names, codes, labels
            return self.escape(value)
        if isinstance(value, Msg):
            return self.message(value)
        if isinstance(value, tuple):
            return ", ".join(self.message(m) for m in value)
        if isinstance(value, Fixed):
            return self.t.fixed(value.value, value.places)
        if isinstance(value, Decimal):
            return self.t.number(value, 2)
        if isinstance(value, int):
            return self.t.number(value, 0)
        if isinstance(value, dt.datetime):
            local = value.astimezone(VIETNAM_TZ) if value.tzinfo else value
            return local.strftime("%d/%m/%Y %H:%M")
        if isinstance(value, dt.date):
            return self.t.date(value)
        return self.escape(value)

    def message(self, m: Msg) -> str:
        return self.t(m.key, **{k: self.param(v) for k, v in m.params.items()})

    def reply(self, reply: Reply) -> Rendered:
        text = "\n".join(self.message(line) for line in reply.lines)
        buttons = tuple(RenderedButton(self.message(b.label), b.payload) for b in reply.buttons)
        image = None
        if reply.chart is not None:
            plain = ReplyRenderer(self.t)  # the picture needs no escaping
            image = render_chart(reply.chart, plain.message(reply.chart.title), lambda d: self.t.number(d, 2))
        return Rendered(text, buttons, image, tuple((f.sha256, f.name) for f in reply.files))
