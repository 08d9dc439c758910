"""What a message asks for, beyond answering the question: navigation, preview, help, language.

Matching is on folded text (no case, no diacritics), so "Để sau", "de sau" and "/desau" agree. An
indicator code jumps only where it cannot be an answer: "4.22.3" always, "1.2" only when the
question does not expect a number (otherwise "câu 1.2" does it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from flows.parse import ascii_int, folded


class Intent(StrEnum):
    HELP = "help"
    GUIDANCE = "guidance"
    PREVIEW = "preview"
    CHART = "chart"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    PROGRESS = "progress"
    MISSING = "missing"
    SUBMIT = "submit"
    SKIP = "skip"
    NEXT = "next"
    BACK = "back"
    NOT_APPLICABLE = "not_applicable"
    DONE = "done"
    CANCEL = "cancel"
    CONFIRM = "confirm"
    RESUME = "resume"
    LANGUAGE = "language"
    JUMP = "jump"
    GROUP = "group"
    START = "start"


@dataclass(frozen=True, slots=True)
class Parsed:
    intent: Intent
    arg: str = ""


_PHRASES: dict[Intent, frozenset[str]] = {
    Intent.HELP: frozenset({"tro giup", "giup", "giup do", "help", "/help", "/trogiup", "?", "menu"}),
    Intent.GUIDANCE: frozenset(
        {"huong dan", "hd", "cach tinh", "giai thich", "guide", "guidance", "/huongdan"}
    ),
    Intent.PREVIEW: frozenset({"xem diem", "diem", "xem diem so", "score", "/score", "/xemdiem"}),
    Intent.PAUSE: frozenset(
        {"tam dung nhac", "tat nhac", "dung nhac", "ngung nhac", "/tamdung", "pause reminders"}
    ),
    Intent.UNPAUSE: frozenset({"bat nhac", "bat lai nhac", "mo nhac", "/batnhac", "resume reminders"}),
    Intent.CHART: frozenset({"bieu do", "xem bieu do", "chart", "/chart", "/bieudo"}),
    Intent.PROGRESS: frozenset({"tien do", "progress", "/progress", "/tiendo"}),
    Intent.MISSING: frozenset({"con thieu", "thieu gi", "con thieu gi", "missing", "/missing", "/conthieu"}),
    Intent.SUBMIT: frozenset({"nop", "nop bai", "nop ho so", "submit", "/submit", "/nop"}),
    Intent.SKIP: frozenset({"de sau", "bo qua", "skip", "later", "sau", "/desau", "/skip"}),
    Intent.NEXT: frozenset({"tiep", "tiep theo", "cau tiep", "next", "/next"}),
    Intent.BACK: frozenset({"quay lai", "lui", "lui lai", "cau truoc", "truoc", "back", "/back", "/quaylai"}),
    Intent.NOT_APPLICABLE: frozenset({"khong ap dung", "kad", "n/a", "na", "not applicable", "/khongapdung"}),
    Intent.DONE: frozenset(
        {
            "xong",
            "xong roi",
            "xong r",
            "da xong",
            "done",
            "du roi",
            "het roi",
            "hoan thanh",
            "/xong",
            "ok",
            "oke",
        }
    ),
    Intent.CANCEL: frozenset({"huy", "cancel", "thoi", "/huy", "/cancel"}),
    Intent.CONFIRM: frozenset({"xac nhan", "dong y nop", "confirm", "/xacnhan"}),
    Intent.RESUME: frozenset({"tiep tuc", "continue", "/continue", "/tieptuc", "bat dau", "/batdau"}),
}
_LANG_WORDS = {
    "english": "en",
    "tieng anh": "en",
    "/english": "en",
    "tieng viet": "vi",
    "vietnamese": "vi",
    "/tiengviet": "vi",
}
_CODE = re.compile(r"^[0-9]+(?:\.[0-9]+)+$")
_JUMP = re.compile(r"^(?:cau|chi tieu|chi so|sua|di|den|toi|xem|go|edit|/)\s*([0-9]+(?:\.[0-9]+)+)$")
_GROUP = re.compile(r"^(?:nhom|group|nhom chi so)\s+(\w+)$")
_LANG = re.compile(r"^(?:/lang|/ngonngu|ngon ngu|language)(?:\s+(\w+))?$")
_START = re.compile(r"^/start(?:@\w+)?(?:\s+(\S+))?$", re.IGNORECASE)


def is_code(text: str) -> bool:
    """Shaped like an indicator code: "1.1", "4.22.3" (ASCII digits only)."""
    return _CODE.match(text) is not None


def detect(text: str, *, codes: frozenset[str], expects_number: bool) -> Parsed | None:
    if len(text) > 200:
        return None
    m = _START.match(text.strip())
    if m is not None:
        return Parsed(Intent.START, m.group(1) or "")
    f = folded(text)
    for intent, phrases in _PHRASES.items():
        if f in phrases:
            return Parsed(intent)
    if f in _LANG_WORDS:
        return Parsed(Intent.LANGUAGE, _LANG_WORDS[f])
    m = _LANG.match(f)
    if m is not None:
        return Parsed(Intent.LANGUAGE, m.group(1) or "")
    m = _JUMP.match(f)
    if m is not None:
        return Parsed(Intent.JUMP, m.group(1))
    if _CODE.match(f) and f in codes and (f.count(".") > 1 or not expects_number):
        return Parsed(Intent.JUMP, f)
    m = _GROUP.match(f)
    if m is not None:
        return Parsed(Intent.GROUP, m.group(1))
    return None


# -- buttons -------------------------------------------------------------------------------------
# payload: "<action>|<period id>|<indicator code or ->|<argument>"; short enough for Telegram's 64 bytes.


@dataclass(frozen=True, slots=True)
class Press:
    action: str
    period_id: int
    code: str
    arg: str


def payload(action: str, period_id: int, code: str | None, arg: str = "") -> str:
    return f"{action}|{period_id}|{code or '-'}|{arg}"


def read_payload(data: str) -> Press | None:
    parts = data.split("|")
    period_id = ascii_int(parts[1]) if len(parts) == 4 and len(data) <= 64 else None
    if period_id is None:
        return None
    return Press(parts[0], period_id, "" if parts[2] == "-" else parts[2], parts[3])
