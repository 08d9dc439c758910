"""The web workspace in a real browser: Debian's Chromium, headless, driven through selenium against
the real aiohttp application served on 127.0.0.1 from a scratch SQLite database.

A district reviewer signs in by link, opens the board, a unit and a PDF evidence, accepts one
indicator, adjusts another, returns a third; the province reviewer closes the appraisal of the other
district's commune; the province
admin computes the results and publishes them through the two-step confirmation, and prints
invites. Screenshots are saved along the way (into `DTI_SCREENSHOTS_DIR`, e.g. docs/screenshots,
else the test's scratch directory). Skipped, saying why, where chromium or chromedriver is absent.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlmodel import select

from bot.web.app import make_app
from bot.web.appraise import _form_inbound
from flows.model import Mode
from storage import migrate
from storage.db import Database
from storage.models import AppraisalDecision, Assessment, Publication
from tests.e2e_support import answer_for
from tests.web_support import WebProvince, web_province

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LAPTOP = (1366, 900)
DATA = Path(__file__).parent / "data"
PHONE = (390, 844)

pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="the browser tests need Debian's chromium and chromium-driver "
        "(/usr/bin/chromium, /usr/bin/chromedriver): apt-get install chromium chromium-driver",
    ),
    # selenium's HTTP connection pool to chromedriver is closed by the interpreter, not by us
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


class Served:
    """The workspace served by aiohttp on 127.0.0.1 from its own thread and event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = int(runner.addresses[0][1])
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(30), "the web workspace did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def real_pdf(path: Path, title: str) -> None:
    """A one-page PDF a browser can render (the viewer shows it in the screenshots)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.27, 11.69))
    fig.text(0.1, 0.9, "UBND XÃ AN BÌNH", fontsize=14, weight="bold")
    fig.text(0.1, 0.85, title, fontsize=18)
    for n, line in enumerate(("Tỷ lệ hồ sơ trực tuyến: 70,4%", "Số hiệu: 15/BC-UBND", "Ngày 10/11/2026")):
        fig.text(0.1, 0.78 - n * 0.04, line, fontsize=12)
    fig.savefig(path, format="pdf")


def answer_more(w: WebProvince, who: str, count: int) -> None:
    """`count` more indicators answered in the chat, evidence left for later."""
    from bot import catalog

    fw = catalog.framework("tay-ninh-commune-2025")
    chat = w.chats[who]
    for _ in range(count):
        session = w.p.session_state(who)
        if session.mode is Mode.EVIDENCE:
            chat.say("để sau")
            session = w.p.session_state(who)
        assert session.current is not None
        chat.say(answer_for(fw, session.current)[0])
    if w.p.session_state(who).mode is Mode.EVIDENCE:
        chat.say("để sau")


@pytest.fixture
def province(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebProvince]:
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "dti_tayninh_bot")
    monkeypatch.setenv("DTI_FRAMEWORKS_DIR", str(tmp_path / "frameworks"))
    (tmp_path / "frameworks").mkdir()
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate.upgrade(url)
    db = Database(url)
    w = web_province(db, tmp_path)
    real_pdf(w.p.files / "bao-cao.pdf", "Báo cáo kết quả chuyển đổi số năm 2025")
    leader = w.chats["leader"]
    for line in ("70,4", f"/file {w.p.files}/bao-cao.pdf", "xong"):
        leader.say(line)
    answer_more(w, "leader", 3)
    for line in ("nộp", "có"):
        leader.say(line)
    other = w.chats["other_leader"]
    for line in ("80", f"/file {w.p.files}/bao-cao.pdf", "xong", "nộp", "có"):
        other.say(line)
    try:
        yield w
    finally:
        db.dispose()


def decide_all_but_last(w: WebProvince, unit_code: str) -> str:
    """Every indicator of the unit accepted by the province reviewer (the web's own form path,
    without the browser) except the last, whose code is returned."""
    from bot import catalog

    framework = catalog.framework("tay-ninh-commune-2025")
    service = w.p.service()
    member = w.member_id("province_reviewer")
    unit_id = w.unit_id(unit_code)
    codes = [i.code for i in framework.indicators]
    for code in codes[:-1]:
        service.handle_web(member, _form_inbound(1, unit_id, code, "accept:0", {}))
    with w.db.session() as s:
        made = s.exec(select(AppraisalDecision)).all()
    assert len(made) == len(codes) - 1
    return codes[-1]


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={LAPTOP[0]},{LAPTOP[1]}",
        "--lang=vi-VN",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=ChromeService(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def shots(tmp_path: Path) -> Path:
    configured = os.environ.get("DTI_SCREENSHOTS_DIR")
    out = Path(configured) if configured else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def snap(driver: Any, out: Path, name: str, full: bool = True) -> None:
    """A screenshot of the page (the whole page on a laptop, up to 2,400 pixels high), once its
    pictures (the board's chart is loaded lazily) are drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    def fit() -> None:
        size = driver.get_window_size()
        chrome = size["height"] - int(driver.execute_script("return window.innerHeight"))
        height = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
        driver.set_window_size(size["width"], min(max(int(height) + chrome, LAPTOP[1]), 2400))

    if full:
        fit()
    driver.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    )
    time.sleep(0.5)  # for the screenshot only: the pictures laid out
    if full:
        fit()  # the pictures may have made the page taller
    driver.save_screenshot(str(out / f"{name}.png"))
    if full:
        driver.set_window_size(*LAPTOP)


def sign_in(driver: Any, base: str, w: WebProvince, who: str) -> None:
    from selenium.webdriver.common.by import By

    token = w.link(who).rsplit("/login/", 1)[1]
    driver.delete_all_cookies()
    driver.get(f"{base}/login/{token}")
    go(driver, driver.find_element(By.CSS_SELECTOR, "form[action^='/login/'] button"))
    assert driver.find_elements(By.CSS_SELECTOR, "header.top .who"), driver.page_source


def go(driver: Any, element: Any) -> None:
    """Click a link or a form's button and wait (up to 10 s) for the page it leads to."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 10).until(lambda _: _left(page))


def _left(page: Any) -> bool:
    """Whether the browser has left the page `page` was the root of. Chromium may answer "does not
    belong to the document" instead of a stale element while the next page is replacing it."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def press(driver: Any, action: str, **fields: str) -> None:
    """Fill and submit one of the appraisal forms (accept, adjust, return)."""
    from selenium.webdriver.common.by import By

    form = driver.find_element(By.XPATH, f"//form[input[@name='action' and @value='{action}']]")
    for name, value in fields.items():
        form.find_element(By.NAME, name).send_keys(value)
    go(driver, form.find_element(By.TAG_NAME, "button"))


def decision(w: WebProvince, unit_code: str, code: str) -> str | None:
    with w.db.session() as s:
        rows = s.exec(
            select(AppraisalDecision.decision)
            .join(Assessment, Assessment.id == AppraisalDecision.assessment_id)  # type: ignore[arg-type]
            .where(Assessment.unit_id == w.unit_id(unit_code), AppraisalDecision.indicator_code == code)
            .order_by(AppraisalDecision.id.desc())  # type: ignore[union-attr]
        ).all()
    return rows[0] if rows else None


def test_a_reviewer_and_an_admin_work_in_the_browser(
    province: WebProvince, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    w, driver, out = province, browser, shots(tmp_path)
    last = decide_all_but_last(w, "25843")
    app = make_app(w.db, w.p.store, w.p.service(), w.p.clock, "http://127.0.0.1")
    with Served(app) as base:
        # the district reviewer: board, a unit, its PDF, the appraisal of three indicators
        sign_in(driver, base, w, "district_reviewer")
        assert driver.current_url.endswith("/board")
        assert "Xã An Bình" in driver.page_source
        go(driver, driver.find_element(By.LINK_TEXT, "Xã An Bình"))
        assert "/units/" in driver.current_url
        snap(driver, out, "unit")
        go(driver, driver.find_element(By.CSS_SELECTOR, "a[href*='/indicators/1.1']"))
        pdf = driver.find_element(By.CSS_SELECTOR, "object.pdf")
        assert pdf.get_attribute("type") == "application/pdf"
        driver.execute_script("arguments[0].scrollIntoView()", pdf)
        time.sleep(2)  # for the screenshot only: the browser's PDF viewer draws the page
        snap(driver, out, "evidence", full=False)
        file_url = pdf.get_attribute("data")
        driver.get(file_url)  # the file itself, inline in the browser's viewer
        assert driver.execute_script("return document.contentType") == "application/pdf"
        unit = w.unit_id("25840")
        driver.get(f"{base}/appraise/{unit}/1.1")
        from bot import catalog

        codes = [i.code for i in catalog.framework("tay-ninh-commune-2025").indicators[:3]]
        assert driver.find_element(By.CSS_SELECTOR, ".tree li.current").text.startswith("1.1")
        assert codes[0] == "1.1"
        press(driver, "accept")
        assert f"/appraise/{unit}/{codes[1]}" in driver.current_url
        form = driver.find_element(By.XPATH, "//form[input[@name='action' and @value='adjust']]")
        form.find_element(By.NAME, "points").send_keys("2")
        form.find_element(By.NAME, "comment").send_keys("Số liệu chưa khớp báo cáo")
        snap(driver, out, "appraise")
        go(driver, form.find_element(By.TAG_NAME, "button"))
        assert f"/appraise/{unit}/{codes[2]}" in driver.current_url, driver.find_element(
            By.CSS_SELECTOR, ".flash"
        ).text
        press(driver, "return", comment="Bổ sung quyết định ban hành kế hoạch", due="20/12/2026")
        assert decision(w, "25840", "1.1") == "accept"
        assert decision(w, "25840", codes[1]) == "adjust"
        assert decision(w, "25840", codes[2]) == "return"
        driver.set_window_size(*PHONE)
        driver.get(f"{base}/appraise/{unit}/1.1")
        driver.save_screenshot(str(out / "appraise-phone.png"))
        driver.set_window_size(*LAPTOP)
        # the province reviewer, for the other district's commune: its last indicator accepted,
        # then Kết thúc thẩm định
        sign_in(driver, base, w, "province_reviewer")
        assert "Xã Hòa Thành" in driver.page_source
        other = w.unit_id("25843")
        driver.get(f"{base}/appraise/{other}/{last}")
        press(driver, "accept")
        go(driver, driver.find_element(By.XPATH, "//form[contains(@action, '/do/close')]/button"))
        assert driver.find_element(By.CSS_SELECTOR, ".flash").text
        with w.db.session() as s:
            closed = s.exec(select(Assessment.status).where(Assessment.unit_id == other)).one()
        assert closed == "appraised"

        # the province admin: compute, preview, publish in two steps; invites to print
        sign_in(driver, base, w, "admin")
        driver.get(f"{base}/results")
        go(driver, driver.find_element(By.XPATH, "//form[contains(@action, '/results/compute')]/button"))
        assert "Hạng" in driver.page_source and "Chưa thẩm định → 0" in driver.page_source
        snap(driver, out, "results")
        go(driver, driver.find_element(By.CSS_SELECTOR, "a[href^='/results/publish']"))
        driver.find_element(By.NAME, "force").click()
        snap(driver, out, "publish-confirm")
        go(driver, driver.find_element(By.CSS_SELECTOR, "form[action^='/results/publish'] button.primary"))
        assert "Đã công bố" in driver.page_source
        driver.get(f"{base}/board")
        assert "Đã thẩm định" in driver.page_source and "Yêu cầu bổ sung" in driver.page_source
        snap(driver, out, "board")
        with w.db.session() as s:
            assert len(s.exec(select(Publication)).all()) == 1
        driver.get(f"{base}/manage/invites")
        form = driver.find_element(By.CSS_SELECTOR, "form[action='/manage/invites']")
        go(driver, form.find_element(By.TAG_NAME, "button"))
        assert driver.find_elements(By.CSS_SELECTOR, ".invite .qr svg")
        assert "https://t.me/dti_tayninh_bot?start=" in driver.page_source
        snap(driver, out, "invites")
        driver.get(f"{base}/manage")
        snap(driver, out, "manage")
        # the province's own annex: uploaded, its reading checked, adopted, a period opened on it
        annex = w.p.files / "phu-luc-xa-2026.docx"
        annex.write_bytes((DATA / "annex-nested-header.docx").read_bytes())
        driver.get(f"{base}/frameworks")
        driver.find_element(By.CSS_SELECTOR, "form.annex-upload input[type=file]").send_keys(str(annex))
        go(driver, driver.find_element(By.CSS_SELECTOR, "form.annex-upload button"))
        assert "Trưởng ban là Phó Chủ tịch → 5" in driver.page_source
        snap(driver, out, "annex-report")
        go(driver, driver.find_element(By.CSS_SELECTOR, "form.adopt button"))
        assert (tmp_path / "frameworks" / "phu-luc-xa-2026.yaml").exists()
        go(driver, driver.find_element(By.CSS_SELECTOR, "#fw-phu-luc-xa-2026 a[href*='open-period']"))
        chosen = driver.find_element(By.CSS_SELECTOR, "select[name=framework] option[selected]")
        assert chosen.get_attribute("value") == "phu-luc-xa-2026"
