"""Period and people on the web through aiohttp's test client: only admins change anything (others get
403, forged forms change nothing); invites made and revoked on the web are the chat's invites (a
revoked one joins no one); a unit's extension shows on the board; a reminder sent now is in the
outbox and the ledger; a period opened, a member removed; every action audited as made on the web."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlmodel import col, select

from scoring.answers import VIETNAM_TZ
from storage.db import Database
from storage.models import AuditLog, Invite, Member, Outbox, Period, Reminder
from tests.test_state_rules_storage import Chat
from tests.web_support import WebProvince, origin, sign_in, web_province


@pytest.fixture
def w(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WebProvince:
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "@dti_thu_bot")
    w = web_province(db, tmp_path)
    for line in ("70,4", f"/file {w.p.files}/bao-cao.pdf", "xong"):
        w.chats["leader"].say(line)
    return w


def audited(w: WebProvince, action: str) -> list[AuditLog]:
    with w.db.session() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id))))


def invites(w: WebProvince) -> list[Invite]:
    with w.db.session() as s:
        return list(s.exec(select(Invite).order_by(col(Invite.id))))


async def post(client: TestClient[object, object], path: str, data: dict[str, str], status: int = 303) -> str:
    response = await client.post(path, data=data, headers=origin(client), allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return text


async def test_only_admins_see_or_change_period_and_people(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    before = len(invites(w))
    own = str(w.unit_id("25840"))
    for who in ("province_reviewer", "district_reviewer", "leader"):
        client.session.cookie_jar.clear()
        csrf = await sign_in(w, client, who)
        assert (await client.get("/manage")).status == 403, who
        assert (await client.get("/manage/invites")).status == 403, who
        form = {"csrf": csrf, "unit": own, "role": "respondent", "days": "14"}
        await post(client, "/manage/invites", form, 403)
        await post(client, "/manage/remind", form, 403)
        extend = {**form, "deadline": "self_assessment_due", "due": "20/02/2027", "reason": "x"}
        await post(client, "/manage/extend", extend, 403)
        await post(client, f"/manage/members/{w.member_id('respondent')}/remove", form, 403)
    assert len(invites(w)) == before
    with w.db.session() as s:
        assert s.exec(select(Member).where(col(Member.removed_at).is_not(None))).all() == []
    client.session.cookie_jar.clear()
    await sign_in(w, client, "admin")
    page = await (await client.get("/manage")).text()
    assert "Xã An Bình" in page and "Gia hạn" in page


async def test_a_forged_form_changes_nothing(w: WebProvince, client: TestClient[object, object]) -> None:
    csrf = await sign_in(w, client, "admin")
    before = len(invites(w))
    form = {"unit": str(w.unit_id("25840")), "role": "respondent", "days": "14"}
    await post(client, "/manage/invites", form, 403)  # no token
    cross = await client.post(
        "/manage/invites", data={**form, "csrf": csrf}, headers={"Origin": "https://x.example"}
    )
    assert cross.status == 403
    assert len(invites(w)) == before


async def test_invites_made_and_revoked_on_the_web_are_the_chats(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    unit = str(w.unit_id("25843"))
    await post(client, "/manage/invites", {"csrf": csrf, "unit": unit, "role": "respondent", "days": "7"})
    await post(client, "/manage/invites", {"csrf": csrf, "unit": unit, "role": "leader", "days": "7"})
    kept, revoked = invites(w)[-2:]
    page = await (await client.get("/manage/invites")).text()
    assert f"https://t.me/dti_thu_bot?start={kept.code}" in page
    assert page.count("<svg") >= 2 and "<?xml" not in page  # the QR codes, inline
    (made, _) = audited(w, "invite.create")[-2:]
    assert made.operator is not None and made.operator.startswith(f"web:{w.member_id('admin')}")
    invite_id = revoked.id
    await post(client, f"/manage/invites/{invite_id}/revoke", {"csrf": csrf})
    (gone,) = audited(w, "invite.revoke")
    assert gone.operator == made.operator
    page = await (await client.get("/manage/invites")).text()
    assert f"start={revoked.code}" not in page and revoked.code not in page  # masked once revoked
    again = await client.post(
        f"/manage/invites/{invite_id}/revoke", data={"csrf": csrf}, headers=origin(client)
    )
    assert again.status == 400 and "thu hồi" in await again.text()  # the CLI's refusal, as a page
    Chat(w.p, "newcomer", kept.code)
    Chat(w.p, "latecomer", revoked.code)
    with w.db.session() as s:
        joined = {m.chat_id: m.role for m in s.exec(select(Member))}
    assert joined.get("newcomer") == "respondent" and "latecomer" not in joined


async def test_an_extension_for_one_unit_shows_on_the_board(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    form = {
        "csrf": csrf,
        "unit": str(w.unit_id("25840")),
        "deadline": "self_assessment_due",
        "due": "20/02/2027 17:00",
        "reason": "Mất điện kéo dài",
    }
    await post(client, "/manage/extend?period=1", form)
    (made,) = audited(w, "deadline.extend")
    assert made.operator is not None and made.operator.startswith("web:")
    assert json.loads(made.new_json or "{}")["reason"] == "Mất điện kéo dài"
    board = await (await client.get("/board")).text()
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*Xã An Bình(?:(?!</tr>).)*</tr>", board, re.S)
    assert row is not None and "20/02/2027" in row.group(0)
    other = re.search(r"<tr[^>]*>(?:(?!</tr>).)*Xã Hòa Thành(?:(?!</tr>).)*</tr>", board, re.S)
    assert other is not None and "20/02/2027" not in other.group(0) and "15/01/2027" in other.group(0)
    manage = await (await client.get("/manage")).text()
    assert "Mất điện kéo dài" in manage
    earlier = {**form, "due": "01/02/2027"}  # not later than the extension: refused, unchanged
    text = await post(client, "/manage/extend", earlier, 400)
    assert "Hạn" in text or "hạn" in text
    assert len(audited(w, "deadline.extend")) == 1
    bad = await post(client, "/manage/extend", {**form, "due": "ngày mai"}, 400)
    assert "ngày mai" in bad
    whole = {**form, "unit": "", "deadline": "appraisal_due", "due": "28/02/2027 17:00"}
    await post(client, "/manage/extend?period=1", whole)  # the period's own deadline
    with w.db.session() as s:
        period = s.get(Period, 1)
        assert period is not None and period.appraisal_due is not None
        assert period.appraisal_due.astimezone(VIETNAM_TZ).strftime("%d/%m/%Y %H:%M") == "28/02/2027 17:00"
    assert "28/02/2027 17:00" in await (await client.get("/manage")).text()


async def test_a_reminder_to_one_unit_is_queued_now(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    with w.db.session() as s:
        before = len(s.exec(select(Outbox)).all())
    await post(client, "/manage/remind", {"csrf": csrf, "unit": str(w.unit_id("25840"))})
    told = {w.member_id("leader"), w.member_id("respondent")}
    with w.db.session() as s:
        queued = s.exec(select(Outbox).order_by(col(Outbox.id))).all()[before:]
        ledger = s.exec(select(Reminder)).all()
    assert {o.member_id for o in queued} == told
    assert all(json.loads(o.payload_json).get("reminder") for o in queued)
    assert {r.member_id for r in ledger} == told and all(r.offset_key.startswith("manual@") for r in ledger)
    (made,) = audited(w, "reminder.manual")
    assert made.operator is not None and made.operator.startswith("web:")
    page = await (await client.get("/manage")).text()
    assert "Đã gửi nhắc việc" in page


async def test_a_period_is_opened_and_a_member_removed(
    w: WebProvince, client: TestClient[object, object]
) -> None:
    csrf = await sign_in(w, client, "admin")
    period = {
        "csrf": csrf,
        "name": "Kỳ đánh giá 2026",
        "year": "2026",
        "framework": "tay-ninh-commune-2025",
        "self_assessment_due": "01/01/2020",
    }
    past = await post(client, "/manage/period", period, 400)
    assert "01/01/2020" in past or "quá" in past or "trước" in past
    await post(client, "/manage/period", {**period, "self_assessment_due": "15/03/2027 17:00"})
    with w.db.session() as s:
        names = [p.name for p in s.exec(select(Period))]
    assert names.count("Kỳ đánh giá 2026") == 1
    respondent = w.member_id("respondent")
    await post(client, f"/manage/members/{respondent}/remove", {"csrf": csrf})
    with w.db.session() as s:
        member = s.get(Member, respondent)
        assert member is not None and member.removed_at is not None
        told = s.exec(select(Outbox).where(Outbox.member_id == respondent)).all()
    texts = [json.dumps(json.loads(o.payload_json), ensure_ascii=False) for o in told]
    assert any("đã gỡ tài khoản chat này" in text for text in texts)
    (made,) = audited(w, "member.remove")
    assert made.operator is not None and made.operator.startswith("web:")
    await post(client, f"/manage/members/{w.member_id('admin')}/remove", {"csrf": csrf}, 400)
