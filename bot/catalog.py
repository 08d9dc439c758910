"""The shipped frameworks (`scoring/frameworks/*.yaml`), a province's own (`DTI_FRAMEWORKS_DIR`), and
files named on the command line.

This is where framework bytes are read; the pure gate (`scoring.gate`) only ever sees text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from scoring.gate import FrameworkInvalid, GateResult, load_framework
from scoring.model import Framework

FRAMEWORKS_DIR = Path(__file__).resolve().parent.parent / "scoring" / "frameworks"


@dataclass(frozen=True)
class Shipped:
    id: str
    path: Path


class FrameworkExists(ValueError):
    """A framework with this id is already in the catalog: frameworks are never written over (a period
    pins its framework's id and version), so a new one needs a new id."""

    def __init__(self, fid: str, version: str) -> None:
        super().__init__(fid)
        self.id = fid
        self.version = version


class NoFrameworksDir(RuntimeError):
    """`DTI_FRAMEWORKS_DIR` is not set: there is no place for a province's own frameworks."""


class UnknownFramework(LookupError):
    def __init__(self, ref: str, known: list[str]) -> None:
        super().__init__(ref)
        self.ref = ref
        self.known = known


def province_dir() -> Path | None:
    """`DTI_FRAMEWORKS_DIR`, where a province's own frameworks are (None when it is not set)."""
    extra = os.environ.get("DTI_FRAMEWORKS_DIR")
    return Path(extra) if extra else None


def shipped() -> list[Shipped]:
    """The frameworks shipped with the code, then any in `DTI_FRAMEWORKS_DIR` (a province's own)."""
    found = [Shipped(p.stem, p) for p in sorted(FRAMEWORKS_DIR.glob("*.yaml"))]
    extra = province_dir()
    if extra is not None:
        found += [Shipped(p.stem, p) for p in sorted(extra.glob("*.yaml"))]
    return found


def add(fid: str, text: str) -> tuple[Path, GateResult]:
    """Write a province's new framework file `text` (a framework with id `fid`) into
    `DTI_FRAMEWORKS_DIR` as `fid.yaml`, where `resolve` finds it: never over a framework already in
    the catalog (`FrameworkExists`), checked by the gate before anything is written, and installed
    whole (a link that fails if another writer got there first)."""
    folder = province_dir()
    if folder is None:
        raise NoFrameworksDir()
    for item in shipped():
        if item.id == fid:
            try:
                version = _load_shipped(item.path, item.path.stat().st_mtime_ns).framework.version
            except (FrameworkInvalid, OSError):
                version = "?"
            raise FrameworkExists(fid, version)
    path = folder / f"{fid}.yaml"
    checked = load_framework(text, str(path))
    if checked.framework.id != fid:
        raise ValueError(f"framework id {checked.framework.id!r} is not {fid!r}")
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{fid}.{os.getpid()}.tmp"
    try:
        temp.write_text(text, encoding="utf-8")
        try:
            os.link(temp, path)
        except FileExistsError as exc:
            raise FrameworkExists(fid, "?") from exc
    finally:
        temp.unlink(missing_ok=True)
    return path, checked


def load_path(path: Path) -> GateResult:
    """Read and validate one framework file (raises OSError or `FrameworkInvalid`)."""
    return load_framework(path.read_text(encoding="utf-8-sig"), str(path))


@cache
def _load_shipped(path: Path, mtime_ns: int) -> GateResult:
    return load_path(path)


def resolve(ref: str) -> GateResult:
    """A shipped framework id (`tay-ninh-commune-2025`, optionally `@version`) or a file path."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_path(path)
    fid, _, version = ref.partition("@")
    for item in shipped():
        if item.id == fid:
            result = _load_shipped(item.path, item.path.stat().st_mtime_ns)
            if version and result.framework.version != version:
                break
            return result
    raise UnknownFramework(ref, [s.id for s in shipped()])


def framework(ref: str) -> Framework:
    return resolve(ref).framework
