"""aiogram's schemas built on first use validate exactly as the ones aiogram builds at import.

`bot/channels/aiogram_schemas.py` keeps aiogram's ~600 pydantic models deferred (about 100 MB and
several seconds saved at start-up). Each check runs in a fresh interpreter, because whether the
schemas are deferred depends on what was imported first: once with aiogram imported on its own (every
schema built at import, aiogram's normal behaviour) and once the way the bot imports it. Both parse
the updates a phone causes and the Bot API's answers to every call the bot makes, and must agree to
the last field. The deferred run then builds every aiogram model through the recorded namespace, so
an aiogram upgrade that breaks the deferral fails here, not on a user's message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys
mode = sys.argv[1]
if mode == "eager":
    import aiogram  # first: aiogram builds every schema at import, as it does on its own
from pydantic import BaseModel
from bot.channels import aiogram_schemas, telegram
from bot.outbound import OutButton
from aiogram.methods.base import Response
from aiogram.types import Update
import types
import tests.fake_telegram
from tests.fake_telegram import BOT_USER, FakeTelegram, Sent

tests.fake_telegram.time = types.SimpleNamespace(time=lambda: 1763700000.0)  # same dates in both runs


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


models = sorted({c for c in subclasses(BaseModel) if c.__module__.startswith("aiogram.")}, key=repr)
deferred_at_import = aiogram_schemas.deferred(models)
aiogram_schemas.warm(telegram.schemas())
unbuilt_used = aiogram_schemas.deferred(telegram.schemas())

fake = FakeTelegram()
chat = 4242
sent = Sent(9, chat, "Chỉ tiêu 1.1", [{"label": "Có", "payload": "yes"}])
updates = [
    fake.text(chat, "/start ABC123"),
    fake.text(chat, "70,4"),
    fake.document(chat, "bien ban.pdf", b"%PDF-1.4 x", caption="minh chứng"),
    fake.photo(chat, b"\xff\xd8\xff\xe0photo", media_group="album-1"),
    fake.press(chat, sent, label="Có"),
    fake.edited(chat, "71"),
    fake.sticker(chat),
    fake.voice(chat),
    fake.blocked(chat),
]
message = {
    "message_id": 10, "date": 1763700000, "from": BOT_USER, "text": "Đã lưu",
    "chat": {"id": chat, "type": "private", "first_name": "Cán bộ"},
    "reply_markup": {"inline_keyboard": [[{"text": "Có", "callback_data": "yes"}]]},
}
results = {
    "Message": message,
    "bool": True,
    "File": {"file_id": "f", "file_unique_id": "fu", "file_size": 10, "file_path": "documents/f.pdf"},
    "list[Update]": updates,
    "Union[Message, bool]": message,
}
out = [Update.model_validate(u).model_dump(mode="json", exclude_unset=True) for u in updates]
for method in telegram.METHODS:
    answer = Response[method.__returning__]
    key = next(k for k in results if answer.__name__ == f"Response[{k}]")
    parsed = answer.model_validate({"ok": True, "result": results[key]})
    out.append(parsed.model_dump(mode="json", exclude_unset=True))
keyboard = telegram.keyboard([OutButton("Có", "yes"), OutButton("Không", "no")])
request = telegram.SendMessage(chat_id=chat, text="Chỉ tiêu 1.2", reply_markup=keyboard)
out.append(request.model_dump(mode="json", exclude_defaults=True))

unbuildable = []
for model in models:
    if not model.__pydantic_complete__:
        try:
            model.model_rebuild(raise_errors=True)
        except Exception as exc:  # report every model that fails, not only the first
            unbuildable.append(f"{model.__name__}: {exc}")
print(json.dumps({
    "models": len(models),
    "deferred_at_import": deferred_at_import,
    "unbuilt_used": unbuilt_used,
    "unbuildable": unbuildable,
    "parsed": out,
}, sort_keys=True))
"""


def run(mode: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_deferred_schemas_parse_exactly_as_aiogram_builds_them() -> None:
    eager, deferred = run("eager"), run("deferred")
    # aiogram imported first builds everything but the base class it never uses itself
    assert eager["deferred_at_import"] == ["MutableTelegramObject"]
    assert deferred["models"] == eager["models"] > 500
    assert len(deferred["deferred_at_import"]) > deferred["models"] / 2
    assert {"Update", "Message", "CallbackQuery", "Poll", "SendMessage"} <= set(
        deferred["deferred_at_import"]
    )
    assert deferred["unbuilt_used"] == [] == eager["unbuilt_used"]
    assert len(deferred["parsed"]) == len(eager["parsed"]) > 15
    for deferred_one, eager_one in zip(deferred["parsed"], eager["parsed"], strict=True):
        assert deferred_one == eager_one
    texts = json.dumps(deferred["parsed"], ensure_ascii=False)
    assert "70,4" in texts and "bien ban.pdf" in texts and "album-1" in texts
    assert deferred["unbuildable"] == []
