"""The shipped frameworks (`scoring/frameworks/*.yaml`), a province's own (`DTI_FRAMEWORKS_DIR`), and
files named on the command line.

This is where framework bytes are read; the pure gate (`scoring.gate`) only ever sees text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from scoring.gate import GateResult, load_framework
from scoring.model import Framework

FRAMEWORKS_DIR = Path(__file__).resolve().parent.parent / "scoring" / "frameworks"


@dataclass(frozen=True)
class Shipped:
    id: str
    path: Path


class UnknownFramework(LookupError):
    def __init__(self, ref: str, known: list[str]) -> None:
        super().__init__(ref)
        self.ref = ref
        self.known = known


def shipped() -> list[Shipped]:
    """The frameworks shipped with the code, then any in `DTI_FRAMEWORKS_DIR` (a province's own)."""
    found = [Shipped(p.stem, p) for p in sorted(FRAMEWORKS_DIR.glob("*.yaml"))]
    extra = os.environ.get("DTI_FRAMEWORKS_DIR")
    if extra:
        found += [Shipped(p.stem, p) for p in sorted(Path(extra).glob("*.yaml"))]
    return found


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
