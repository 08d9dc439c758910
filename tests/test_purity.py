"""flows/ and scoring/ stay pure: no I/O, network, database, clock or locale modules imported."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

FORBIDDEN = {
    "aiogram",
    "aiohttp",
    "httpx",
    "sqlmodel",
    "sqlalchemy",
    "alembic",
    "storage",
    "bot",
    "socket",
    "subprocess",
    "os",
    "pathlib",
    "io",
    "time",
    "locale",
    "gettext",
    "requests",
    "asyncio",
    "random",
}


def test_pure_packages_import_nothing_impure() -> None:
    offenders = []
    for pkg in ("scoring", "flows"):
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in FORBIDDEN:
                        offenders.append(f"{path.relative_to(ROOT)}: {name}")
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("now", "today", "utcnow")
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: reads the clock")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: opens a file")
    assert offenders == []
