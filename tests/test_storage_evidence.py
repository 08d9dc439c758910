"""The evidence file store: type detection from content, deduplication, atomic write-once files, names."""

from __future__ import annotations

import hashlib
import io
import itertools
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.evidence import (
    EXTENSION_ALIASES,
    MAX_NAME_BYTES,
    SUPPORTED_TYPES,
    EvidenceConflict,
    EvidenceRejected,
    EvidenceStore,
    FileType,
    StoredFile,
    claimed_extension,
    detect_type,
    download_name,
    evidence_dir,
    extension_for,
    sanitize_name,
)

# -- tiny samples --------------------------------------------------------------------------------------

PDF = (
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08mdat"


def zip_bytes(entries: dict[str, bytes], prefix: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return prefix + buffer.getvalue()


CONTENT_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
)


def ooxml(part: str) -> bytes:
    return zip_bytes(
        {"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": b"<Relationships/>", part: b"<x/>"}
    )


def odf(mimetype: str) -> bytes:
    return zip_bytes({"mimetype": mimetype.encode(), "content.xml": b"<office:document-content/>"})


def ole2(*streams: str) -> bytes:
    """A compound-file header followed by one directory sector naming `streams` (enough for detection)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    header = header.ljust(512, b"\x00")
    entries = b""
    for name in ("Root Entry", *streams):
        encoded = (name + "\0").encode("utf-16-le")
        entries += encoded.ljust(64, b"\x00") + len(encoded).to_bytes(2, "little") + bytes(62)
    return header + entries.ljust(512, b"\x00")


def real_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.append(["Chỉ số", "Điểm"])  # type: ignore[union-attr]
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


ACCEPTED = [
    ("pdf", PDF, "application/pdf", "pdf"),
    ("png", PNG, "image/png", "png"),
    ("jpeg", JPEG, "image/jpeg", "jpg"),
    ("gif", GIF, "image/gif", "gif"),
    ("webp", WEBP, "image/webp", "webp"),
    ("heic", ftyp(b"heic", b"mif1", b"heic"), "image/heic", "heic"),
    ("heif-mif1-heic", ftyp(b"mif1", b"mif1", b"heic"), "image/heic", "heic"),
    ("heif", ftyp(b"mif1", b"mif1"), "image/heif", "heif"),
    ("doc", ole2("WordDocument", "\x05SummaryInformation"), "application/msword", "doc"),
    ("xls", ole2("Workbook"), "application/vnd.ms-excel", "xls"),
    ("xls-biff5", ole2("Book"), "application/vnd.ms-excel", "xls"),
    ("ppt", ole2("PowerPoint Document", "Current User"), "application/vnd.ms-powerpoint", "ppt"),
    (
        "docx",
        ooxml("word/document.xml"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    (
        "xlsx",
        ooxml("xl/workbook.xml"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    (
        "xlsx-openpyxl",
        real_xlsx(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    (
        "pptx",
        ooxml("ppt/presentation.xml"),
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pptx",
    ),
    ("odt", odf("application/vnd.oasis.opendocument.text"), "application/vnd.oasis.opendocument.text", "odt"),
    (
        "ods",
        odf("application/vnd.oasis.opendocument.spreadsheet"),
        "application/vnd.oasis.opendocument.spreadsheet",
        "ods",
    ),
    (
        "odp",
        odf("application/vnd.oasis.opendocument.presentation"),
        "application/vnd.oasis.opendocument.presentation",
        "odp",
    ),
]

PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\x00\x00"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56)

REJECTED = [
    ("pe-named-pdf", PE, "report.pdf", "name_mismatch"),
    ("elf-named-docx", ELF, "bao-cao.docx", "name_mismatch"),
    ("pe", PE, "setup.exe", "unsupported_type"),
    ("shell-script", b"#!/bin/sh\nrm -rf /\n", "run.sh", "unsupported_type"),
    ("shell-named-pdf", b"#!/bin/sh\necho hi\n", "ke-hoach.pdf", "name_mismatch"),
    ("plain-zip", zip_bytes({"a.txt": b"hello"}), "files.zip", "unsupported_type"),
    ("plain-zip-named-xlsx", zip_bytes({"a.txt": b"hello"}), "bang.xlsx", "name_mismatch"),
    ("html", b"<!DOCTYPE html><html><script>alert(1)</script></html>", "page.html", "unsupported_type"),
    ("html-no-name", b"<html><body>x</body></html>", None, "unsupported_type"),
    ("text", "Kế hoạch số 12".encode(), "note.txt", "unsupported_type"),
    ("pdf-later-in-file", b"<html>%PDF-1.7", "x.pdf", "name_mismatch"),
    (
        "self-extracting-zip",
        zip_bytes({"[Content_Types].xml": CONTENT_TYPES, "word/d.xml": b""}, PE),
        None,
        "unsupported_type",
    ),
    ("ooxml-without-parts", zip_bytes({"[Content_Types].xml": CONTENT_TYPES}), None, "unsupported_type"),
    ("epub", odf("application/epub+zip"), "book.epub", "unsupported_type"),
    ("msi-compound-file", ole2("\u4840\u3b3f\u43f2\u4838"), "setup.msi", "unsupported_type"),
    ("mp4", ftyp(b"isom", b"isom", b"mp41"), "clip.mp4", "unsupported_type"),
    ("truncated-zip", ooxml("word/document.xml")[:40], "x.docx", "name_mismatch"),
]


@pytest.fixture
def store(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore(tmp_path / "evidence")


def stored_files(store: EvidenceStore) -> list[Path]:
    return sorted(
        p for p in store.root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(store.root).parts
    )


def temp_files(store: EvidenceStore) -> list[Path]:
    temp_dir = store.root / "tmp"
    return list(temp_dir.iterdir()) if temp_dir.exists() else []


def chunked(data: bytes, size: int = 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# -- detection -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "data", "mime", "extension"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_types_are_detected_from_bytes(
    store: EvidenceStore, label: str, data: bytes, mime: str, extension: str
) -> None:
    stored = store.put(data, original_name="tai-lieu.bin")
    assert (stored.mime, stored.extension) == (mime, extension)
    streamed = store.put_stream(chunked(data), original_name=None)
    assert (streamed.sha256, streamed.mime, streamed.existed) == (stored.sha256, mime, True)


@pytest.mark.parametrize(("label", "data", "name", "reason"), REJECTED, ids=[r[0] for r in REJECTED])
def test_unsupported_content_is_rejected_whatever_its_name(
    store: EvidenceStore, label: str, data: bytes, name: str | None, reason: str
) -> None:
    with pytest.raises(EvidenceRejected) as raised:
        store.put(data, original_name=name)
    assert raised.value.reason == reason
    with pytest.raises(EvidenceRejected) as raised:
        store.put_stream(chunked(data), original_name=name)
    assert raised.value.reason == reason
    assert stored_files(store) == []
    assert temp_files(store) == []


def test_detected_type_wins_over_the_name(store: EvidenceStore) -> None:
    stored = store.put(PNG, original_name="scan.pdf")
    assert (stored.mime, stored.extension) == ("image/png", "png")
    assert download_name("scan.pdf", stored.extension) == "scan.png"
    assert download_name("Ảnh.JPEG", "jpg") == "Ảnh.JPEG"
    assert download_name(None, "pdf") == "tep.pdf"
    assert download_name("../../x.docx", "docx") == "x.docx"


@pytest.mark.parametrize(
    ("name", "extension", "expected"),
    [
        ("baocao.bat", "pdf", "baocao.pdf"),
        ("trang.html", "pdf", "trang.pdf"),
        ("x.pdf.html", "pdf", "x.pdf.pdf"),
        ("bieu-do.svg", "png", "bieu-do.png"),
        ("mau-bieu.jar", "docx", "mau-bieu.docx"),
        ("BAOCAO.PDF", "pdf", "BAOCAO.PDF"),
        ("anh.jpeg", "jpg", "anh.jpeg"),
        ("Báo cáo 15.2025", "pdf", "Báo cáo 15.2025.pdf"),
        ("QĐ 45.QĐ-UBND", "pdf", "QĐ 45.QĐ-UBND.pdf"),
        ("bao cao", "pdf", "bao cao.pdf"),
        (".bat", "pdf", "bat.pdf"),
        ("baocao.bat", None, "baocao.bat"),
    ],
)
def test_download_name_carries_the_detected_extension(
    name: str, extension: str | None, expected: str
) -> None:
    assert download_name(name, extension) == expected


def test_a_stored_document_is_sent_under_its_detected_type(store: EvidenceStore) -> None:
    stored = store.put(PDF, original_name="baocao.bat")
    assert extension_for(stored.mime) == "pdf" and extension_for("text/html") is None
    assert store.document(stored.sha256, "baocao.bat") == (PDF, "baocao.pdf")


def test_compound_file_name_breaks_ties() -> None:
    both = ole2("WordDocument", "Workbook")
    assert detect_type(both) is not None and detect_type(both).extension == "doc"  # type: ignore[union-attr]
    assert detect_type(both, "bang.xls").extension == "xls"  # type: ignore[union-attr]


# -- storing -------------------------------------------------------------------------------------------


def test_same_bytes_are_stored_once(store: EvidenceStore) -> None:
    first = store.put(PDF, original_name="a.pdf")
    second = store.put(PDF, original_name="b.pdf")
    assert first.existed is False and second.existed is True
    assert first.path == second.path
    assert first.sha256 == hashlib.sha256(PDF).hexdigest() and first.size == len(PDF)
    assert stored_files(store) == [first.path]
    assert temp_files(store) == []
    with store.open(first.sha256) as handle:
        assert handle.read() == PDF
    assert store.exists(first.sha256)
    assert not store.exists("0" * 64)


def test_layout_and_permissions(store: EvidenceStore) -> None:
    stored = store.put(PDF, original_name="../../etc/passwd.pdf")
    sha = stored.sha256
    assert stored.path == store.root / sha[0:2] / sha[2:4] / sha
    assert stored.path.relative_to(store.root).parts == (sha[0:2], sha[2:4], sha)
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o640
    for directory in (store.root, store.root / sha[0:2], stored.path.parent, store.root / "tmp"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750


def test_existing_file_is_never_overwritten(store: EvidenceStore) -> None:
    sha = hashlib.sha256(PDF).hexdigest()
    target = store.path_for(sha)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"something else")
    with pytest.raises(EvidenceConflict) as raised:
        store.put(PDF)
    assert raised.value.path == target and raised.value.sha256 == sha
    with pytest.raises(EvidenceConflict):
        store.put_stream([PDF])
    assert target.read_bytes() == b"something else"
    assert temp_files(store) == []


def test_file_appearing_before_the_link_is_kept(
    store: EvidenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer wins the race between the existence check and the link: its file stays as it is."""
    sha = hashlib.sha256(PDF).hexdigest()
    target = store.path_for(sha)
    real_existing = store._existing
    calls = itertools.count()
    inodes: list[int] = []

    def racing_existing(sha256: str, size: int, found: object) -> StoredFile | None:
        if next(calls) == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(PDF)
            inodes.append(target.stat().st_ino)
            return None
        return real_existing(sha256, size, found)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_existing", racing_existing)
    stored = store.put(PDF)
    assert stored.existed is True
    assert [target.stat().st_ino] == inodes
    assert temp_files(store) == []


def test_link_never_replaces_a_different_file(store: EvidenceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = hashlib.sha256(PDF).hexdigest()
    target = store.path_for(sha)
    real_existing = store._existing
    calls = itertools.count()

    def racing_existing(sha256: str, size: int, found: object) -> StoredFile | None:
        if next(calls) == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"intruder")
            return None
        return real_existing(sha256, size, found)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_existing", racing_existing)
    with pytest.raises(EvidenceConflict):
        store.put_stream(chunked(PDF))
    assert target.read_bytes() == b"intruder"
    assert temp_files(store) == []


def test_empty_is_rejected(store: EvidenceStore) -> None:
    attempts: list[Callable[[], StoredFile]] = [
        lambda: store.put(b""),
        lambda: store.put_stream([]),
        lambda: store.put_stream([b"", b""]),
    ]
    for attempt in attempts:
        with pytest.raises(EvidenceRejected) as raised:
            attempt()
        assert raised.value.reason == "empty"
    assert stored_files(store) == [] and temp_files(store) == []


def test_oversize_is_rejected_before_writing(store: EvidenceStore) -> None:
    with pytest.raises(EvidenceRejected) as raised:
        store.put(PDF + bytes(100), max_size=len(PDF) + 99)
    assert (raised.value.reason, raised.value.max_size) == ("too_large", len(PDF) + 99)
    assert not store.root.exists()  # nothing was written, not even a directory

    exact = PDF + bytes(100)
    assert store.put(exact, max_size=len(exact)).size == len(exact)


def test_oversize_stream_stops_reading_early(store: EvidenceStore) -> None:
    pulled = itertools.count()

    def endless() -> Iterator[bytes]:
        yield PDF
        while True:
            next(pulled)
            yield b"x" * 1024

    with pytest.raises(EvidenceRejected) as raised:
        store.put_stream(endless(), max_size=10 * 1024)
    assert raised.value.reason == "too_large"
    assert next(pulled) <= 11  # stopped right after crossing the limit
    assert stored_files(store) == [] and temp_files(store) == []


def test_large_streamed_upload_within_limit(store: EvidenceStore) -> None:
    data = PDF + b"0" * (3 * 1024 * 1024)
    stored = store.put_stream(chunked(data, 64 * 1024), original_name="dai.pdf")
    assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.path.read_bytes() == data


# -- paths and names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "a" * 64 + "\n",
        "/" + "a" * 63,
        "",
        "a" * 62 + "/.",
    ],
)
def test_sha_is_validated(store: EvidenceStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.path_for(bad)
    with pytest.raises(ValueError):
        store.open(bad)
    with pytest.raises(ValueError):
        store.exists(bad)


def test_evidence_dir_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DTI_EVIDENCE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert evidence_dir() == tmp_path / "var" / "evidence"
    monkeypatch.setenv("DTI_EVIDENCE_DIR", str(tmp_path / "ev"))
    assert evidence_dir() == tmp_path / "ev"
    assert EvidenceStore().root == tmp_path / "ev"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\cb\\Desktop\\Báo cáo.pdf", "Báo cáo.pdf"),
        ("a\x00b\x1b[31m.pdf", "ab[31m.pdf"),
        ("Ke\u0302\u0301 hoa\u0323ch.docx", "Kế hoạch.docx"),
        ("  tab\there\n.pdf  ", "tab here .pdf"),
        ("gpj\u202e.exe", "gpj.exe"),
        ("..", "tep"),
        ("", "tep"),
        ("/", "tep"),
        ("dir/", "tep"),
        (" . ", "tep"),
    ],
)
def test_sanitize_name_examples(raw: str, clean: str) -> None:
    assert sanitize_name(raw) == clean


def test_sanitize_name_keeps_the_extension_when_cutting() -> None:
    name = sanitize_name("Quyết định " * 40 + ".pdf")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert name.endswith(".pdf") and name.startswith("Quyết định")


NAME_CHARS = st.one_of(
    st.characters(),
    st.sampled_from(["/", "\\", "\x00", ".", " ", "\u202e", "\u0301", "\ud800", "\n", "ệ", "\u2028"]),
)


@given(
    st.one_of(st.text(), st.text(NAME_CHARS, max_size=50), st.text(NAME_CHARS, min_size=100, max_size=400))
)
def test_sanitize_name_is_always_safe(raw: str) -> None:
    clean = sanitize_name(raw)
    assert clean
    assert len(clean.encode("utf-8")) <= MAX_NAME_BYTES
    assert "/" not in clean and "\\" not in clean and "\x00" not in clean
    assert all(char.isprintable() or char == " " for char in clean)
    assert clean == clean.strip()
    assert sanitize_name(clean) == clean


@given(
    st.one_of(st.text(), st.text(NAME_CHARS, max_size=50), st.text(NAME_CHARS, min_size=100, max_size=400)),
    st.sampled_from(SUPPORTED_TYPES),
)
def test_download_name_always_ends_in_the_detected_type(raw: str, found: FileType) -> None:
    name = download_name(raw, found.extension)
    assert name == sanitize_name(name) and len(name.encode("utf-8")) <= MAX_NAME_BYTES
    claimed = claimed_extension(name)
    assert claimed is not None and EXTENSION_ALIASES[claimed] is found
