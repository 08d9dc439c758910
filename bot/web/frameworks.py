"""A province's annex on the web, for province admins: upload it, read the same import report the CLI
prints (`dtibot framework import`), download it as a workbook, and adopt the framework as a new one in
the province's frameworks directory, where `dtibot period open` and the chat find it.

The import is the CLI's (`bot.annex_files.import_annex_file`, `bot.render.annex`), and so is where a
framework is written (`bot.catalog.add`: never over one already in the catalog). Between the upload
and the adoption the file is kept by the SHA-256 of its content beside the evidence store, under a
random token bound to the admin's browser session; the adoption reads it again from there (nothing a
browser sends back is taken for the framework).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from bot import catalog
from bot.annex_files import ANNEX_SUFFIXES, AnnexUnreadable, ImportResult, import_annex_file, slug
from bot.i18n import Translator
from bot.render.annex import problem_lines, report_header, report_row, write_report
from bot.render.labels import LEVEL
from bot.web.errors import PageError
from bot.web.pages import SESSION, XLSX, flash_later, render, state, stream_file, translator, viewer
from bot.web.roles import admin, web_operator
from scoring.export import dump_framework
from scoring.gate import FrameworkInvalid
from scoring.messages import N_
from scoring.model import UnitLevel
from scoring.rules_text import Confidence
from storage import frameworks as store_frameworks
from storage.evidence import sanitize_name
from storage.web import Viewer

MAX_ANNEX = 5 * 1024 * 1024  # an annex of a few hundred rows is far smaller
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
REFUSED = N_("web.fw.refused.title")
_FIELDS = ("id", "version", "title", "level")
# the adoption form's decision fields → the framework file's `decision` keys (`--decision-number` …)
DECISION = {"decision_number": "number", "decision_date": "date", "issuer": "issuer"}
PENDING_FOR = 24 * 3600  # seconds an upload waits for its adoption


def province_admin(request: web.Request) -> Viewer:
    """The viewer, if they are an admin of a province: the only ones who adopt frameworks."""
    who = admin(request)
    with state(request).db.session() as s:
        if store_frameworks.unit_level(s, who.unit_id) != UnitLevel.PROVINCE.value:
            raise PageError(403)
    return who


@dataclass(frozen=True)
class Upload:
    """An uploaded annex waiting for its adoption: its stored content and who may see it."""

    token: str
    session_id: int
    member_id: int
    sha256: str
    name: str


def _uploads(request: web.Request) -> Path:
    return state(request).store.root / "annexes"


def _keep(request: web.Request, data: bytes, name: str) -> Upload:
    """The file under its digest and a token for this browser session, each written whole (tokens
    left unused for a day are dropped; the files stay, as evidence does)."""
    folder = _uploads(request)
    (folder / "pending").mkdir(parents=True, exist_ok=True)
    stale = state(request).clock().timestamp() - PENDING_FOR
    for old in (folder / "pending").glob("*.json"):
        if old.stat().st_mtime < stale:
            old.unlink(missing_ok=True)
    sha256 = hashlib.sha256(data).hexdigest()
    content = folder / sha256
    if not content.exists():
        _write_whole(content, data)
    upload = Upload(
        secrets.token_urlsafe(32), request[SESSION].session_id, viewer(request).member_id, sha256, name
    )
    record = {"session": upload.session_id, "member": upload.member_id, "sha256": sha256, "name": name}
    _write_whole(folder / "pending" / f"{upload.token}.json", json.dumps(record).encode())
    return upload


def _write_whole(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def _upload(request: web.Request) -> Upload:
    """The upload the URL's token names, if this browser session made it (otherwise 404)."""
    token = request.match_info["token"]
    if _TOKEN.fullmatch(token) is None:
        raise PageError(404)
    try:
        record = json.loads((_uploads(request) / "pending" / f"{token}.json").read_text())
    except (OSError, ValueError) as exc:
        raise PageError(404) from exc
    upload = Upload(
        token, int(record["session"]), int(record["member"]), str(record["sha256"]), str(record["name"])
    )
    if upload.session_id != request[SESSION].session_id or upload.member_id != viewer(request).member_id:
        raise PageError(404)
    return upload


async def _import(data: bytes, name: str, **options: Any) -> ImportResult:
    """`import_annex_file` off the event loop (a long annex takes a moment to read); raises
    `AnnexUnreadable` as it does."""
    call = functools.partial(import_annex_file, data, name, **options)
    return await asyncio.get_running_loop().run_in_executor(None, call)


async def _read(request: web.Request, upload: Upload, **options: Any) -> ImportResult:
    """The stored annex read again, as `dtibot framework import` reads it."""
    try:
        data = (_uploads(request) / upload.sha256).read_bytes() if _SHA256.fullmatch(upload.sha256) else b""
    except OSError as exc:
        raise PageError(404) from exc
    if hashlib.sha256(data).hexdigest() != upload.sha256:
        raise PageError(404)
    try:
        return await _import(data, upload.name, **options)
    except AnnexUnreadable as exc:
        raise PageError(400, REFUSED, N_("web.fw.unreadable"), name=upload.name, problem=str(exc)) from exc


def _catalog(t: Translator, used: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every framework `dtibot framework list` shows, with the periods that pin it."""
    province = catalog.province_dir()
    out: list[dict[str, Any]] = []
    for item in catalog.shipped():
        mine = province is not None and item.path.parent == province
        try:
            fw = catalog.resolve(item.id).framework
        except (FrameworkInvalid, OSError, LookupError):
            out.append({"id": item.id, "broken": True, "province": mine})
            continue
        out.append(
            {
                "id": fw.id,
                "broken": False,
                "province": mine,
                "version": fw.version,
                "title": fw.title,
                "level": t(LEVEL[fw.level]),
                "indicators": len(fw.indicators),
                "max": fw.max_points,
                "periods": used.get(fw.key, []),
            }
        )
    return out


async def frameworks_page(request: web.Request) -> web.Response:
    """The frameworks in the catalog and the form to upload a province's annex."""
    province_admin(request)
    t = translator(request)
    with state(request).db.session() as s:
        used = store_frameworks.periods_by_framework(s)
    context = {
        "frameworks": _catalog(t, used),
        # web2's "Period and people" page opens periods (`dtibot period open`'s code); without it, the CLI
        "manage": any(r.canonical == "/manage" for r in request.app.router.resources()),
        "province_dir": catalog.province_dir() is not None,
        "suffixes": ", ".join(s for s in ANNEX_SUFFIXES if s not in (".xlsm", ".txt")),
        "max_mb": MAX_ANNEX // (1024 * 1024),
    }
    return render(request, "frameworks.html", context)


async def upload_annex(request: web.Request) -> web.Response:
    """An annex from the admin's computer: checked that it opens as an annex, kept, then its report."""
    province_admin(request)
    fields = await request.post()
    part = fields.get("file")
    if not isinstance(part, FileField) or not part.filename:
        raise PageError(400, REFUSED, N_("web.fw.no_file"))
    name = sanitize_name(part.filename)
    if Path(name).suffix.lower() not in ANNEX_SUFFIXES:
        raise PageError(415, REFUSED, N_("web.fw.bad_type"), name=name, types=", ".join(ANNEX_SUFFIXES))
    data = part.file.read(MAX_ANNEX + 1)
    if len(data) > MAX_ANNEX:
        raise PageError(413, REFUSED, N_("web.fw.too_large"), max=MAX_ANNEX // (1024 * 1024))
    if not data:
        raise PageError(400, REFUSED, N_("web.fw.no_file"))
    try:
        await _import(data, name)
    except AnnexUnreadable as exc:
        raise PageError(400, REFUSED, N_("web.fw.unreadable"), name=name, problem=str(exc)) from exc
    upload = _keep(request, data, name)
    raise web.HTTPSeeOther(f"/frameworks/import/{upload.token}")


def _report_context(
    t: Translator, upload: Upload, result: ImportResult, form: dict[str, str]
) -> dict[str, Any]:
    errors, warnings = problem_lines(t, result)
    counts = {c: sum(1 for r in result.report if r.confidence is c) for c in Confidence}
    rows = []
    for r in result.report:
        cells = report_row(t, r)
        rows.append({"cells": cells, "confidence": r.confidence.value, "notes": cells[8].split("\n")})
    return {
        "upload": upload,
        "errors": errors,
        "warnings": warnings,
        "header": report_header(t),
        "rows": rows,
        "summary": t(
            "annex.summary",
            indicators=len(result.report),
            high=counts[Confidence.HIGH],
            medium=counts[Confidence.MEDIUM],
            low=counts[Confidence.LOW],
        ),
        "form": form,
        "levels": [(level.value, t(LEVEL[level])) for level in UnitLevel],
        "province_dir": catalog.province_dir() is not None,
    }


def _default_form(upload: Upload) -> dict[str, str]:
    stem = Path(upload.name).stem
    return {
        "id": slug(stem),
        "version": "1",
        "title": stem,
        "level": UnitLevel.COMMUNE.value,
        **dict.fromkeys(DECISION, ""),
    }


async def report_page(request: web.Request) -> web.Response:
    """The import report of an uploaded annex and, when it has no errors, the form to adopt it."""
    province_admin(request)
    upload = _upload(request)
    form = _default_form(upload)
    result = await _read(request, upload, framework_id=form["id"], title=form["title"])
    return render(
        request, "framework_import.html", _report_context(translator(request), upload, result, form)
    )


async def report_xlsx(request: web.Request) -> web.StreamResponse:
    """The report as the workbook `dtibot framework import --report` writes."""
    province_admin(request)
    upload = _upload(request)
    result = await _read(request, upload)
    t = translator(request)
    name = f"bao-cao-nhap-{slug(Path(upload.name).stem)}.xlsx"
    return await stream_file(request, lambda out: write_report(t, result.report, out), name, XLSX)


async def adopt(request: web.Request) -> web.Response:
    """The framework of the upload, read again with the admin's id, version, title and level, written
    into the province's frameworks directory (never over one in the catalog) and audited."""
    who = province_admin(request)
    upload = _upload(request)
    posted = await request.post()
    form = {k: str(posted.get(k, "")).strip()[:200] for k in (*_FIELDS, *DECISION)}
    t = translator(request)
    if form["level"] not in {level.value for level in UnitLevel}:
        form["level"] = UnitLevel.COMMUNE.value
    if not form["id"] or not form["version"] or not form["title"]:
        raise PageError(400, REFUSED, N_("web.fw.fields"))
    decision = {key: form[field] for field, key in DECISION.items() if form[field]}  # as the CLI's options
    result = await _read(
        request,
        upload,
        framework_id=form["id"],
        title=form["title"],
        level=form["level"],
        version=form["version"],
        decision=decision,
    )
    if result.framework is None:
        context = _report_context(t, upload, result, form)
        return render(request, "framework_import.html", context, status=400)
    fw = result.framework
    header = t("cli.yaml_header", source=upload.name)
    st = state(request)
    written: Path | None = None
    try:
        with st.db.session() as s:  # the audit row is committed only with the file in place
            written, _checked = catalog.add(fw.id, dump_framework(fw, header))
            store_frameworks.record_adoption(
                s,
                now=st.clock(),
                member_id=who.member_id,
                operator=web_operator(who),
                key=fw.key,
                path=str(written),
                source=upload.name,
                sha256=upload.sha256,
                indicators=len(fw.indicators),
            )
    except catalog.NoFrameworksDir as exc:
        raise PageError(503, REFUSED, N_("web.fw.no_dir")) from exc
    except catalog.FrameworkExists as exc:
        suggestion = f"{exc.id}-{slug(form['version'])}"
        raise PageError(
            409, REFUSED, N_("web.fw.exists"), id=exc.id, version=exc.version, suggestion=suggestion
        ) from exc
    except BaseException:
        if written is not None:  # the audit could not be written: the framework is not adopted
            written.unlink(missing_ok=True)
        raise
    (_uploads(request) / "pending" / f"{upload.token}.json").unlink(missing_ok=True)
    flash_later(request, [t("web.fw.adopted", key=fw.key, indicators=len(fw.indicators))])
    raise web.HTTPSeeOther(f"/frameworks?adopted={fw.id}")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/frameworks", frameworks_page),
        web.post("/frameworks/import", upload_annex),
        web.get("/frameworks/import/{token}", report_page),
        web.get("/frameworks/import/{token}/report.xlsx", report_xlsx),
        web.post("/frameworks/import/{token}/adopt", adopt),
    ]
