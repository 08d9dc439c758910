"""The web workspace from the command line: `dtibot web link` prints a sign-in link an operator hands
to a member (audited with who printed it), and `make demo` (`dtibot demo`) prints one for the demo
province's admin, with the command that serves the workspace; each link signs a browser in once."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import select

from bot.web.app import make_app
from storage.db import Database
from storage.evidence import EvidenceStore
from storage.models import AuditLog
from tests.test_operator_cli import DTIBOT, run
from tests.web_support import web_province


async def use(client: TestClient[object, object], link: str) -> int:
    path = "/login/" + link.rsplit("/login/", 1)[1]
    url = client.make_url("/")
    done = await client.post(
        path, headers={"Origin": f"{url.scheme}://{url.host}:{url.port}"}, allow_redirects=False
    )
    return done.status


async def test_an_operator_prints_a_link_for_a_member(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = web_province(db, tmp_path, {"admin": ("70000", "admin")})
    monkeypatch.setenv("DTI_DATABASE_URL", db.url)
    monkeypatch.setenv("DTI_WEB_URL", "https://dti.example.vn/")
    monkeypatch.setenv("USER", "vanhanh")
    code, out, _ = run("web", "link", "--member", str(w.member_id("admin")))
    assert code == 0
    link = out.splitlines()[0]
    assert re.fullmatch(r"https://dti\.example\.vn/login/[A-Za-z0-9_\-]{40,}", link)
    with db.session() as s:
        audit = s.exec(select(AuditLog).where(AuditLog.action == "web.link_issued")).one()
        assert audit.operator == "vanhanh" and audit.actor_member_id is None
    code, _, err = run("web", "link", "--member", "999")
    assert code == 2 and "999" in err
    client = TestClient(TestServer(make_app(db, w.p.store, w.p.service(), base_url="https://dti.example.vn")))
    await client.start_server()
    try:
        assert await use(client, link) == 303
        assert await use(client, link) == 410  # once
    finally:
        await client.close()


async def test_the_demo_prints_a_web_sign_in_link(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTI_")}
    demo = subprocess.run(
        [DTIBOT, "demo"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr
    lines = demo.stderr.splitlines()
    assert any(line.strip().endswith("run web") and "DTI_DATABASE_URL=" in line for line in lines)
    link = next(line.strip() for line in lines if "/login/" in line)
    assert link.startswith("http://127.0.0.1:8090/login/")
    db = Database(
        f"sqlite:///{tmp_path / 'var' / 'demo.db'}"
        if (tmp_path / "var").exists()
        else f"sqlite:///{tmp_path / 'dti.db'}"
    )
    try:
        client = TestClient(TestServer(make_app(db, EvidenceStore(tmp_path / "var" / "evidence"))))
        await client.start_server()
        try:
            assert await use(client, link) == 303
            board = await client.get("/board")
            assert board.status == 200 and "minh họa" in await board.text()
        finally:
            await client.close()
    finally:
        db.dispose()
