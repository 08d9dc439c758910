"""Content-addressed storage of evidence files on disk, so uploads are deduplicated and never overwritten.

A file is accepted only if its bytes are a document or image type officials actually submit (PDF, images,
Office and OpenDocument files); the type comes from the content, never from the name. Files live at
`<root>/<sha[0:2]>/<sha[2:4]>/<sha256>`: no user-supplied text ever reaches a path. Writes go to a temp file
in `<root>/tmp/`, are fsynced, then hard-linked into place, which fails instead of replacing an existing
file. The original file name is kept only as display metadata (`sanitize_name`), with the extension of
the detected type (`download_name`): a PDF sent as `baocao.bat` is recorded, shown, sent and exported as
`baocao.pdf`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

EVIDENCE_DIR_ENV = "DTI_EVIDENCE_DIR"
DEFAULT_MAX_SIZE = 20 * 1024 * 1024
DIR_MODE = 0o750
FILE_MODE = 0o640
FALLBACK_NAME = "tep"
MAX_NAME_BYTES = 255

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024

RejectReason = Literal["empty", "too_large", "unsupported_type", "name_mismatch"]


class EvidenceRejected(ValueError):
    """An upload was refused before anything was stored.

    `reason` is a machine code: "empty"; "too_large" (`size` is how much was seen before giving up,
    `max_size` the limit); "unsupported_type" (content is not an accepted type); "name_mismatch" (content
    is not an accepted type although the name claims one, e.g. a program named `report.pdf`;
    `claimed_extension` holds that extension).
    """

    def __init__(
        self,
        reason: RejectReason,
        *,
        size: int | None = None,
        max_size: int | None = None,
        claimed_extension: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason: RejectReason = reason
        self.size = size
        self.max_size = max_size
        self.claimed_extension = claimed_extension


class EvidenceConflict(RuntimeError):
    """The target path of `sha256` already holds different bytes (disk corruption or tampering).

    The existing file is left untouched; an operator has to look at `path`.
    """

    def __init__(self, sha256: str, path: Path) -> None:
        super().__init__(sha256, str(path))
        self.sha256 = sha256
        self.path = path


@dataclass(frozen=True)
class FileType:
    mime: str
    extension: str


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    mime: str
    extension: str
    path: Path
    existed: bool


PDF = FileType("application/pdf", "pdf")
JPEG = FileType("image/jpeg", "jpg")
PNG = FileType("image/png", "png")
GIF = FileType("image/gif", "gif")
WEBP = FileType("image/webp", "webp")
HEIC = FileType("image/heic", "heic")
HEIF = FileType("image/heif", "heif")
DOC = FileType("application/msword", "doc")
XLS = FileType("application/vnd.ms-excel", "xls")
PPT = FileType("application/vnd.ms-powerpoint", "ppt")
DOCX = FileType("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx")
XLSX = FileType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")
PPTX = FileType("application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx")
ODT = FileType("application/vnd.oasis.opendocument.text", "odt")
ODS = FileType("application/vnd.oasis.opendocument.spreadsheet", "ods")
ODP = FileType("application/vnd.oasis.opendocument.presentation", "odp")

SUPPORTED_TYPES: tuple[FileType, ...] = (
    PDF,
    JPEG,
    PNG,
    GIF,
    WEBP,
    HEIC,
    HEIF,
    DOC,
    XLS,
    PPT,
    DOCX,
    XLSX,
    PPTX,
    ODT,
    ODS,
    ODP,
)

# Extensions a name may carry for each accepted type (used to spot names that claim an accepted type).
EXTENSION_ALIASES: dict[str, FileType] = {
    **{t.extension: t for t in SUPPORTED_TYPES},
    "jpeg": JPEG,
    "jpe": JPEG,
    "hif": HEIF,
    "dot": DOC,
    "xlt": XLS,
    "pps": PPT,
    "pot": PPT,
}

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_ODF_TYPES = {
    b"application/vnd.oasis.opendocument.text": ODT,
    b"application/vnd.oasis.opendocument.spreadsheet": ODS,
    b"application/vnd.oasis.opendocument.presentation": ODP,
}
# Stream names that mark a compound (OLE2) file as a Word, PowerPoint or Excel document, in that order
# of preference. Other compound files (MSI installers, Outlook messages, ...) are refused.
_OLE2_STREAMS: tuple[tuple[str, FileType], ...] = (
    ("WordDocument", DOC),
    ("PowerPoint Document", PPT),
    ("Workbook", XLS),
    ("Book", XLS),
)
_OLE2_DIR_ENTRY = 128
_HEAD = 4096


def evidence_dir() -> Path:
    """The evidence root: `DTI_EVIDENCE_DIR`, else `var/evidence` under the working directory."""
    configured = os.environ.get(EVIDENCE_DIR_ENV, "").strip()
    return Path(configured) if configured else Path.cwd() / "var" / "evidence"


def claimed_extension(name: str | None) -> str | None:
    """The lower-case extension of a file name, if it has one."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem or not ext:
        return None
    return ext.strip().lower() or None


def _heif_type(head: bytes) -> FileType | None:
    box_size = int.from_bytes(head[0:4], "big")
    if head[4:8] != b"ftyp" or box_size < 16 or box_size > len(head):
        return None
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, box_size - 3, 4)}
    if major in _HEIC_BRANDS:
        return HEIC
    if major in _HEIF_BRANDS:
        return HEIC if compatible & _HEIC_BRANDS else HEIF
    return None


def _zip_type(source: BinaryIO) -> FileType | None:
    try:
        with zipfile.ZipFile(source) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            if "[Content_Types].xml" in infos:
                for prefix, found in (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX)):
                    if any(name.startswith(prefix) for name in infos):
                        return found
                return None
            mimetype = infos.get("mimetype")
            if mimetype is not None and mimetype.file_size <= 100:
                return _ODF_TYPES.get(archive.read(mimetype).strip())
    except Exception:  # hostile or broken archives raise all sorts of errors; they are just not accepted
        return None
    return None


def _ole2_entries(source: BinaryIO) -> Iterator[bytes]:
    """Every 128-byte aligned block after the 512-byte header (directory entries are always aligned)."""
    source.seek(512)
    while True:
        block = source.read(_CHUNK)
        if not block:
            return
        for offset in range(0, len(block) - _OLE2_DIR_ENTRY + 1, _OLE2_DIR_ENTRY):
            yield block[offset : offset + _OLE2_DIR_ENTRY]


def _ole2_type(source: BinaryIO, claimed: str | None) -> FileType | None:
    wanted: dict[bytes, tuple[int, FileType]] = {}
    for stream, found in _OLE2_STREAMS:
        encoded = (stream + "\0").encode("utf-16-le")
        wanted[encoded.ljust(64, b"\0")] = (len(encoded), found)
    matches: list[FileType] = []
    for entry in _ole2_entries(source):
        hit = wanted.get(entry[:64])
        if hit is not None and int.from_bytes(entry[64:66], "little") == hit[0] and hit[1] not in matches:
            matches.append(hit[1])
    if not matches:
        return None
    # A compound file can embed others (a workbook inside a document); let the name break the tie.
    claimed_type = EXTENSION_ALIASES.get(claimed) if claimed else None
    if claimed_type in matches:
        return claimed_type
    order = [found for _, found in _OLE2_STREAMS]
    return min(matches, key=order.index)


def detect_stream(source: BinaryIO, original_name: str | None = None) -> FileType | None:
    """The accepted type of the seekable binary `source` judged from its content, or None."""
    source.seek(0)
    head = source.read(_HEAD)
    found: FileType | None = None
    if head.startswith(b"%PDF-"):
        found = PDF
    elif head.startswith(b"\xff\xd8\xff"):
        found = JPEG
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        found = PNG
    elif head.startswith((b"GIF87a", b"GIF89a")):
        found = GIF
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        found = WEBP
    elif head[4:8] == b"ftyp":
        found = _heif_type(head)
    elif head.startswith(_OLE2_MAGIC):
        found = _ole2_type(source, claimed_extension(original_name))
    elif head.startswith(_ZIP_MAGIC):
        source.seek(0)
        found = _zip_type(source)
    source.seek(0)
    return found


def detect_type(data: bytes, original_name: str | None = None) -> FileType | None:
    """The accepted type of `data` judged from its content (the name only breaks OLE2 ties), or None."""
    return detect_stream(io.BytesIO(data), original_name)


def _check_type(found: FileType | None, original_name: str | None, size: int) -> FileType:
    if found is not None:
        return found
    claimed = claimed_extension(original_name)
    if claimed is not None and claimed in EXTENSION_ALIASES:
        raise EvidenceRejected("name_mismatch", size=size, claimed_extension=claimed)
    raise EvidenceRejected("unsupported_type", size=size, claimed_extension=claimed)


def sanitize_name(name: str) -> str:
    """A display-safe version of a user-supplied file name; it is metadata, never used as a path.

    Keeps only the last path component, drops control/format/surrogate characters, folds whitespace
    runs to one space, trims spaces and dots at both ends, NFC-normalizes and cuts to 255 UTF-8 bytes
    (keeping a short extension). Returns "tep" when nothing is left.
    """
    text = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    kept: list[str] = []
    for char in text:
        if char.isspace():
            if kept and kept[-1] != " ":
                kept.append(" ")
        elif not unicodedata.category(char).startswith("C"):
            kept.append(char)
    text = unicodedata.normalize("NFC", "".join(kept)).strip(" .")
    if len(text.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, ext = text.rpartition(".")
        if not dot or not stem or len(ext.encode("utf-8")) > 16:
            stem, ext = text, ""
        suffix = "." + ext if ext else ""
        budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(" .")
        text = (stem + suffix).strip(" .")
    return text or FALLBACK_NAME


def _looks_like_extension(text: str) -> bool:
    """ "bat", "html", "pdf": a file extension; "2025" (from "15.2025"), "QĐ-UBND", "final version": not."""
    return 0 < len(text) <= 8 and text.isascii() and text.isalnum() and not text.isdigit()


def download_name(original_name: str | None, extension: str | None) -> str:
    """The name a stored file is recorded, shown, sent and exported under: whatever the sender called
    it, it ends in the extension of the type detected from its content (`extension`). A name already
    ending in it (or an alias: `.jpeg` for a JPEG) is kept; otherwise its last extension is replaced
    (`baocao.bat` → `baocao.pdf`, `x.pdf.html` → `x.pdf.pdf`) and a name without one gets it
    (`Báo cáo 15.2025` → `Báo cáo 15.2025.pdf`). Without an `extension` (not a stored file): the name
    made safe only."""
    name = sanitize_name(original_name or FALLBACK_NAME)
    if not extension:
        return name
    extension = extension.lower()
    expected = EXTENSION_ALIASES.get(extension)
    claimed = claimed_extension(name)
    if claimed is not None and (
        claimed == extension or (expected and EXTENSION_ALIASES.get(claimed) is expected)
    ):
        return name
    stem, dot, last = name.rpartition(".")
    if dot and stem and _looks_like_extension(last):
        name = stem
    return sanitize_name(f"{name}.{extension}")


_BY_MIME = {t.mime: t for t in SUPPORTED_TYPES}


def extension_for(mime: str | None) -> str | None:
    """The extension of an accepted type, by its MIME type as recorded with the evidence."""
    found = _BY_MIME.get(mime or "")
    return found.extension if found is not None else None


def _file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EvidenceStore:
    """Evidence files under one root directory, addressed by the SHA-256 of their content."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else evidence_dir()

    # -- paths -----------------------------------------------------------------------------------------

    def path_for(self, sha256: str) -> Path:
        """Where the file with this digest lives; ValueError unless it is 64 lower-case hex digits."""
        if not isinstance(sha256, str) or _SHA256_RE.fullmatch(sha256) is None:
            raise ValueError("sha256 must be 64 lower-case hex digits")
        return self.root / sha256[0:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """The stored file for reading (FileNotFoundError if it is not stored)."""
        return self.path_for(sha256).open("rb")

    def document(self, sha256: str, name: str | None) -> tuple[bytes, str]:
        """A stored file's bytes and the name to send it under, which carries its detected type's
        extension whatever name it was recorded with (rows stored before names were so recorded)."""
        data = self.path_for(sha256).read_bytes()
        found = detect_type(data, name)
        return data, download_name(name, found.extension if found is not None else None)

    # -- writing ---------------------------------------------------------------------------------------

    def put(
        self, data: bytes, original_name: str | None = None, max_size: int = DEFAULT_MAX_SIZE
    ) -> StoredFile:
        """Store `data` once; size and type are checked before anything is written."""
        size = len(data)
        if size == 0:
            raise EvidenceRejected("empty", size=0, max_size=max_size)
        if size > max_size:
            raise EvidenceRejected("too_large", size=size, max_size=max_size)
        found = _check_type(detect_type(data, original_name), original_name, size)
        sha256 = hashlib.sha256(data).hexdigest()
        existing = self._existing(sha256, size, found)
        if existing is not None:
            return existing
        with self._temp_file() as (handle, temp_path):
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            return self._install(temp_path, sha256, size, found)

    def put_stream(
        self,
        chunks: Iterable[bytes],
        original_name: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> StoredFile:
        """Store a file arriving in chunks; stops reading as soon as it exceeds `max_size`."""
        digest = hashlib.sha256()
        size = 0
        with self._temp_file() as (handle, temp_path):
            for chunk in chunks:
                size += len(chunk)
                if size > max_size:
                    raise EvidenceRejected("too_large", size=size, max_size=max_size)
                digest.update(chunk)
                handle.write(chunk)
            if size == 0:
                raise EvidenceRejected("empty", size=0, max_size=max_size)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            with temp_path.open("rb") as source:
                found = _check_type(detect_stream(source, original_name), original_name, size)
            sha256 = digest.hexdigest()
            existing = self._existing(sha256, size, found)
            if existing is not None:
                return existing
            return self._install(temp_path, sha256, size, found)

    # -- internals -------------------------------------------------------------------------------------

    def _makedirs(self, path: Path) -> None:
        missing: list[Path] = []
        current = path
        while not current.is_dir():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, DIR_MODE)
                os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask

    @contextlib.contextmanager
    def _temp_file(self) -> Iterator[tuple[io.BufferedWriter, Path]]:
        temp_dir = self.root / "tmp"
        self._makedirs(temp_dir)
        fd, name = tempfile.mkstemp(dir=temp_dir, prefix="upload-")
        temp_path = Path(name)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                yield handle, temp_path
        finally:
            temp_path.unlink(missing_ok=True)

    def _existing(self, sha256: str, size: int, found: FileType) -> StoredFile | None:
        path = self.path_for(sha256)
        if not path.exists():
            return None
        if _file_sha256(path) != (sha256, size):
            raise EvidenceConflict(sha256, path)
        return StoredFile(sha256, size, found.mime, found.extension, path, existed=True)

    def _install(self, temp_path: Path, sha256: str, size: int, found: FileType) -> StoredFile:
        final = self.path_for(sha256)
        self._makedirs(final.parent)
        try:
            os.link(temp_path, final)  # fails rather than replace an existing file
        except FileExistsError:
            existing = self._existing(sha256, size, found)
            if existing is None:  # pragma: no cover - removed between link and check
                raise
            return existing
        _fsync_dir(final.parent)
        return StoredFile(sha256, size, found.mime, found.extension, final, existed=False)
