"""`dtibot` end to end: scoring, ranking, validating, importing and exporting; bad input exits 2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from scoring.answers import parse_answers
from scoring.engine import score
from scoring.model import Framework
from scoring.numbers import round_score
from tests.conftest import ROOT, TAY_NINH_TSV

SAMPLE = ROOT / "bot" / "demo" / "tay-ninh-sample-answers.json"
UNITS = ROOT / "bot" / "demo" / "tay-ninh-sample-units.json"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def write_json(tmp_path: Path, data: Any, name: str = "a.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_console_script_scores_as_json() -> None:
    env = {**os.environ, "DTI_LANG": "vi"}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dtibot"),
            "score",
            "tay-ninh-commune-2025",
            str(SAMPLE),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"total", "max", "index", "percent", "band", "groups", "indicators"} <= data.keys()
    assert data["max"] == 960 and len(data["indicators"]) == 62
    assert [g["max"] for g in data["groups"]] == [80, 100, 100, 520, 80, 80]
    assert all({"code", "score", "max", "status"} <= i.keys() for i in data["indicators"])


def test_json_score_equals_the_core(tay_ninh: Framework) -> None:
    code, out, _ = run("score", "tay-ninh-commune-2025", str(SAMPLE), "--json")
    assert code == 0
    data = json.loads(out)
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"), parse_float=Decimal)
    report = score(tay_ninh, parse_answers(tay_ninh, doc))
    assert Decimal(str(data["total"])) == round_score(report.total)
    assert sum(Decimal(str(g["score"])) for g in data["groups"]) == pytest.approx(
        Decimal(str(data["total"])), abs=Decimal("0.03")
    )
    statuses = {i["code"]: i["status"] for i in data["indicators"]}
    assert (
        statuses["4.22.8"] == "missing"
        and statuses["1.4"] == "evidence_missing"
        and statuses["3.1"] == "not_applicable"
    )


def test_text_summary_is_vietnamese_with_decimal_comma(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"answers": {"1.1": {"value": 70.4, "evidence": ["bc.pdf"]}}})
    code, out, _ = run("score", "tay-ninh-commune-2025", path)
    assert code == 0
    assert "Tổng điểm: 7,04/960" in out
    assert "1.1" in out and "7,04" in out and "chưa trả lời" in out
    code, out, _ = run("--lang", "en", "score", "tay-ninh-commune-2025", path)
    assert "Total: 7.04/960" in out


@pytest.mark.parametrize(
    ("answers", "needle"),
    [
        ({"9.9": {"value": 1}}, "9.9"),
        ({"1.1": {"value": "nhiều"}}, "1.1"),
        ({"1.1": {"value": 120}}, "120"),
        ({"1.1": {"value": {"numerator": 3, "denominator": 0}}}, "mẫu số bằng 0"),
        ({"1.1": {"value": {"numerator": 31, "denominator": 30}}}, "tử số 31 lớn hơn mẫu số 30"),
        ({"3.5": {"value": "có"}}, "true"),
        ({"1.4": {"value": 25}}, "0–20"),
        ({"1.1": {"not_applicable": True}}, "không áp dụng"),
        ({"1.1": {"valeu": 3}}, "valeu"),
    ],
)
def test_bad_answers_exit_2_naming_code_and_problem(
    tmp_path: Path, answers: dict[str, Any], needle: str
) -> None:
    path = write_json(tmp_path, {"answers": answers})
    code, out, err = run("score", "tay-ninh-commune-2025", path, "--json")
    assert code == 2
    assert out == ""
    assert needle in err
    assert "Chỉ tiêu" in err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"answers": {"1.1": {"value": 70.4}', "dòng 1"),
        ('{"answers": {"1.1": {"value": 1}, "1.1": {"value": 2}}}', "hai lần"),
        ('{"answers": {"1.1": {"value": NaN}}}', "NaN"),
        ("[1, 2]", "answers"),
    ],
)
def test_malformed_json_exits_2(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    code, out, err = run("score", "tay-ninh-commune-2025", str(path))
    assert (code, out) == (2, "")
    assert needle in err


def test_unknown_framework_and_missing_file_exit_2(tmp_path: Path) -> None:
    code, _, err = run("score", "khong-co", str(SAMPLE))
    assert code == 2 and "tay-ninh-commune-2025" in err
    code, _, err = run("score", "tay-ninh-commune-2025", str(tmp_path / "none.json"))
    assert code == 2 and "none.json" in err


def test_evidence_deadline_from_the_command_line(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "answers": {
                "3.5": {"value": True, "evidence": [{"name": "gm.pdf", "submitted_at": "2027-01-16T08:00"}]}
            }
        },
    )
    _, out, _ = run(
        "score", "tay-ninh-commune-2025", path, "--json", "--evidence-deadline", "2027-01-15T17:00"
    )
    assert {i["code"]: i["status"] for i in json.loads(out)["indicators"]}["3.5"] == "evidence_late"
    _, out, _ = run("score", "tay-ninh-commune-2025", path, "--json")
    assert json.loads(out)["total"] == 10


def test_rank_command(tmp_path: Path) -> None:
    code, out, _ = run("rank", "tay-ninh-commune-2025", str(UNITS), "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 3, 5, 6, 7]
    assert rows[-1]["appraised"] is False and rows[-1]["total"] == 0
    code, out, _ = run("rank", "tay-ninh-commune-2025", str(UNITS))
    assert code == 0 and "Hạng" in out and "chưa được thẩm định" in out


def test_framework_list_show_validate() -> None:
    code, out, _ = run("framework", "list")
    assert code == 0 and "tay-ninh-commune-2025@2025.1" in out and "62 chỉ tiêu" in out and "960" in out
    code, out, _ = run("framework", "show", "tay-ninh-commune-2025")
    assert code == 0 and "4.22.10" in out and "Tuyên truyền chuyển đổi số tại địa phương" in out
    code, out, _ = run("framework", "show", "mic-maturity-commune-example")
    assert "Khởi động → Kết nối → Cơ bản → Nâng cao → Thích ứng" in out
    path = ROOT / "scoring" / "frameworks" / "tay-ninh-commune-2025.yaml"
    code, out, _ = run("framework", "validate", str(path))
    assert code == 0 and "hợp lệ" in out and "CẢNH BÁO" in out  # the missing decision number is a warning


def test_validate_reports_file_code_field_and_fix(tmp_path: Path) -> None:
    path = ROOT / "scoring" / "frameworks" / "tay-ninh-commune-2025.yaml"
    broken = (
        path.read_text(encoding="utf-8")
        .replace("code: '1.2'", "code: '1.1'", 1)
        .replace("max_points: 80", "max_points: 85", 1)
    )
    bad = tmp_path / "hong.yaml"
    bad.write_text(broken, encoding="utf-8")
    code, out, err = run("framework", "validate", str(bad))
    assert code == 2 and out == ""
    assert f"{bad}, chỉ tiêu 1.1, trường code: mã chỉ tiêu 1.1 bị trùng" in err
    assert "tổng điểm tối đa các chỉ tiêu là 80" in err
    code, _, err = run("--lang", "en", "framework", "validate", str(bad))
    assert "indicator code 1.1 is used twice" in err


def test_import_then_export_round_trip(tmp_path: Path, tay_ninh: Framework) -> None:
    out_yaml = tmp_path / "tn.yaml"
    code, out, err = run(
        "framework",
        "import",
        str(TAY_NINH_TSV),
        "-o",
        str(out_yaml),
        "--id",
        "tn-import",
        "--title",
        "Tây Ninh",
    )
    assert code == 0, err
    assert "62 chỉ tiêu" in out
    code, out, _ = run("framework", "validate", str(out_yaml))
    assert code == 0
    for suffix in ("xlsx", "csv", "tsv", "yaml"):
        exported = tmp_path / f"tn-export.{suffix}"
        code, _, err = run("framework", "export", "tay-ninh-commune-2025", "-o", str(exported))
        assert code == 0, err
        assert exported.stat().st_size > 0
    again = tmp_path / "again.yaml"
    assert (
        run("framework", "import", str(tmp_path / "tn-export.xlsx"), "-o", str(again), "--id", "again")[0]
        == 0
    )
    code, out, _ = run("framework", "show", str(again), "--json")
    data = json.loads(out)
    codes = [i["code"] for g in data["groups"] for i in g["indicators"]]
    assert codes == [i.code for i in tay_ninh.indicators]


def test_import_explains_rows_it_cannot_read(tmp_path: Path) -> None:
    sheet = tmp_path / "hong.csv"
    sheet.write_text("Mã,Chỉ tiêu,Nhóm,Điểm tối đa\n1.1,Tỷ lệ A,G,mười\n", encoding="utf-8")
    code, out, err = run("framework", "import", str(sheet), "-o", str(tmp_path / "x.yaml"))
    assert code == 2 and out == ""
    assert "dòng 2" in err and "mười" in err
    assert not (tmp_path / "x.yaml").exists()
