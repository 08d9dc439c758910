"""`dtibot`: the command line for operators and provincial staff.

Exit status: 0 done, 2 bad input (a message names the file, the indicator and the problem; nothing
is printed as if it were a result), 1 the database cannot be reached (one line says so) or an
unexpected failure. Output cut short by its reader (`dtibot status | head`) ends the command quietly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TextIO

from sqlalchemy.exc import DBAPIError

from bot import catalog, cli_admin
from bot.annex_files import ANNEX_SUFFIXES, AnnexUnreadable, ImportResult, import_annex_file
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator
from bot.render.annex import method_text, problem_lines, report_lines, write_report
from bot.render.labels import ANSWER_TYPE, LEVEL
from bot.render.problems import answer_problem, gate_issues
from bot.render.score import report_json, report_text
from bot.sheets import write_rows
from scoring.answers import VIETNAM_TZ, AnswerError, parse_answers
from scoring.engine import Report, Rules, score, score_units
from scoring.export import dump_framework, framework_rows, indicator_data
from scoring.gate import FrameworkInvalid, GateResult
from scoring.model import AnswerType, Framework, TiersMethod, UnitLevel
from scoring.numbers import round_index
from scoring.ranking import RankEntry, RankRow, rank


class UsageProblem(Exception):
    """Bad input from the user: printed as is, exit status 2."""


class Context:
    def __init__(self, t: Translator, out: TextIO, err: TextIO) -> None:
        self.t = t
        self.out = out
        self.err = err

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def fail(self, *lines: str) -> NoReturn:
        raise UsageProblem("\n".join(lines))

    def table(self, rows: Sequence[Sequence[str]]) -> None:
        """Rows as aligned columns (the first row is the header)."""
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.say("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())


# -- loading inputs ------------------------------------------------------------------------------


def _resolve(ctx: Context, ref: str) -> GateResult:
    t = ctx.t
    try:
        return catalog.resolve(ref)
    except catalog.UnknownFramework as exc:
        ctx.fail(t("cli.unknown_framework", ref=ref, known=", ".join(exc.known)))
    except FrameworkInvalid as exc:
        ctx.fail(*gate_issues(t, exc.errors, exc.warnings))
    except OSError as exc:
        ctx.fail(t("cli.cannot_read", path=ref, problem=exc.strerror or str(exc)))


def _framework(ctx: Context, ref: str) -> Framework:
    return _resolve(ctx, ref).framework


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise _DuplicateKey(dupes[0])
    return dict(pairs)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _bad_constant(name: str) -> NoReturn:
    raise ValueError(name)


def _json_file(ctx: Context, path: str) -> object:
    t = ctx.t
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        ctx.fail(t("cli.cannot_read", path=path, problem=exc.strerror or str(exc)))
    except UnicodeDecodeError:
        ctx.fail(t("cli.not_utf8", path=path))
    try:
        return json.loads(
            text, parse_float=Decimal, object_pairs_hook=_reject_duplicates, parse_constant=_bad_constant
        )
    except json.JSONDecodeError as exc:
        ctx.fail(t("cli.bad_json", path=path, line=exc.lineno, column=exc.colno, problem=exc.msg))
    except _DuplicateKey as exc:
        ctx.fail(t("cli.json_duplicate_key", path=path, key=exc.key))
    except ValueError as exc:
        ctx.fail(t("cli.json_constant", path=path, value=str(exc)))


def _answers(ctx: Context, framework: Framework, document: object, path: str) -> dict[str, Any]:
    try:
        return parse_answers(framework, document)
    except AnswerError as exc:
        ctx.fail(
            ctx.t("cli.answers_invalid", path=path), *("- " + answer_problem(ctx.t, p) for p in exc.problems)
        )


def _rules(ctx: Context, args: argparse.Namespace) -> Rules:
    deadline = None
    if args.evidence_deadline:
        try:
            deadline = dt.datetime.fromisoformat(args.evidence_deadline)
        except ValueError:
            ctx.fail(ctx.t("cli.bad_datetime", value=args.evidence_deadline))
        if deadline.tzinfo is None:
            deadline = deadline.replace(tzinfo=VIETNAM_TZ)
    return Rules(require_evidence=not args.ignore_evidence, evidence_deadline=deadline)


# -- commands ------------------------------------------------------------------------------------


def cmd_framework_list(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    for item in catalog.shipped():
        try:
            fw = catalog.resolve(item.id).framework
        except FrameworkInvalid as exc:
            ctx.say(f"{item.id}: " + t("cli.framework_broken", errors=len(exc.errors)))
            continue
        ctx.say(
            t(
                "cli.framework_list_line",
                id=fw.id,
                version=fw.version,
                level=t(LEVEL[fw.level]),
                indicators=len(fw.indicators),
                max=t.number(fw.max_points),
                title=fw.title,
            )
        )
    return 0


# Answer types whose scoring `framework show` spells out: what an edited annex framework must confirm.
_SPELLED_OUT = frozenset({AnswerType.CHOICE, AnswerType.PARTS, AnswerType.COUNT, AnswerType.RATIO})


def cmd_framework_show(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    fw = _framework(ctx, args.framework)
    if args.json:
        from scoring.export import framework_data

        ctx.say(json.dumps(framework_data(fw), ensure_ascii=False, indent=2, default=str))
        return 0
    ctx.say(fw.title)
    ctx.say(
        t(
            "cli.framework_summary",
            key=fw.key,
            level=t(LEVEL[fw.level]),
            groups=len(fw.groups),
            indicators=len(fw.indicators),
            max=t.number(fw.max_points),
        )
    )
    if fw.classification is not None:
        bands = ", ".join(
            f"{b.label} ≥ {t.number(b.min)}{'%' if fw.classification.basis.value == 'percent' else ''}"
            for b in fw.classification.bands
        )
        ctx.say(t("cli.framework_bands", bands=bands))
    if fw.levels:
        ctx.say(t("cli.framework_levels", levels=" → ".join(lv.name for lv in fw.levels)))
    for g in fw.groups:
        ctx.say("")
        ctx.say(t("cli.framework_group", id=g.id, name=g.name, max=t.number(g.max_points)))
        for code in g.indicator_codes:
            ind = fw.indicator(code)
            assert ind is not None
            kind = t(ANSWER_TYPE[ind.answer.type])
            ctx.say(f"  {ind.code:<8} {t.number(ind.max_points):>5}  [{kind}]  {ind.text}")
            if ind.answer.type in _SPELLED_OUT or isinstance(ind.method, TiersMethod):
                data = indicator_data(ind)
                ctx.say(" " * 17 + "↳ " + method_text(t, data["answer"], data["scoring"], ind.max_points))
    return 0


def cmd_framework_validate(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    try:
        result = catalog.load_path(Path(args.file))
    except FrameworkInvalid as exc:
        for line in gate_issues(t, exc.errors, exc.warnings):
            print(line, file=ctx.err)
        print(
            t("cli.validate_failed", path=args.file, errors=len(exc.errors), warnings=len(exc.warnings)),
            file=ctx.err,
        )
        return 2
    except OSError as exc:
        ctx.fail(t("cli.cannot_read", path=args.file, problem=exc.strerror or str(exc)))
    for line in gate_issues(t, [], result.warnings):
        ctx.say(line)
    fw = result.framework
    ctx.say(
        t(
            "cli.validate_ok",
            path=args.file,
            key=fw.key,
            indicators=len(fw.indicators),
            max=t.number(fw.max_points),
            warnings=len(result.warnings),
        )
    )
    return 0


def cmd_framework_import(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    path = Path(args.file)
    if path.suffix.lower() not in ANNEX_SUFFIXES:
        ctx.fail(t("cli.sheet_type", path=args.file, types=", ".join(ANNEX_SUFFIXES)))
    decision: dict[str, Any] = {}
    if args.decision_number:
        decision["number"] = args.decision_number
    if args.decision_date:
        decision["date"] = args.decision_date
    if args.issuer:
        decision["issuer"] = args.issuer
    try:
        result = import_annex_file(
            path,
            args.file,
            framework_id=args.id,
            title=args.title,
            level=args.level,
            version=args.version,
            decision=decision,
            sheet=args.sheet,
        )
    except OSError as exc:
        ctx.fail(t("cli.cannot_read", path=args.file, problem=exc.strerror or str(exc)))
    except AnnexUnreadable as exc:
        ctx.fail(t("cli.sheet_unreadable", path=args.file, problem=str(exc)))
    errors, warnings = problem_lines(t, result)
    if args.report:
        _write_report(ctx, result, Path(args.report))
    for line in warnings:
        print(line, file=ctx.err)
    if result.framework is None:
        ctx.fail(t("cli.import_failed", path=args.file, rows=len(errors)), *errors)
    for line in report_lines(t, result.report):
        ctx.say(line)
    ctx.say("")
    _write_framework(ctx, GateResult(result.framework, ()), Path(args.output), source=args.file)
    return 0


def _write_report(ctx: Context, result: ImportResult, out: Path) -> None:
    t = ctx.t
    if out.suffix.lower() not in (".xlsx", ".csv", ".tsv"):
        ctx.fail(t("cli.output_type", path=str(out)))
    try:
        write_report(t, result.report, out)
    except OSError as exc:
        ctx.fail(t("cli.cannot_write", path=str(out), problem=exc.strerror or str(exc)))
    print(t("annex.report_written", path=str(out), indicators=len(result.report)), file=ctx.err)


def _write_framework(ctx: Context, result: GateResult, out: Path, source: str) -> None:
    t = ctx.t
    fw = result.framework
    suffix = out.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            header = t("cli.yaml_header", source=source)
            out.write_text(dump_framework(fw, header), encoding="utf-8")
        elif suffix in (".xlsx", ".csv", ".tsv"):
            write_rows(out, framework_rows(fw), title=fw.id)
        else:
            ctx.fail(t("cli.output_type", path=str(out)))
    except OSError as exc:
        ctx.fail(t("cli.cannot_write", path=str(out), problem=exc.strerror or str(exc)))
    for line in gate_issues(t, [], result.warnings):
        print(line, file=ctx.err)
    ctx.say(t("cli.written", path=str(out), indicators=len(fw.indicators), max=t.number(fw.max_points)))


def cmd_framework_export(ctx: Context, args: argparse.Namespace) -> int:
    _write_framework(ctx, _resolve(ctx, args.framework), Path(args.output), source=args.framework)
    return 0


def cmd_score(ctx: Context, args: argparse.Namespace) -> int:
    fw = _framework(ctx, args.framework)
    document = _json_file(ctx, args.answers)
    answers = _answers(ctx, fw, document, args.answers)
    report = score(fw, answers, _rules(ctx, args))
    _print_report(ctx, fw, report, args.json)
    return 0


def _print_report(ctx: Context, fw: Framework, report: Report, as_json: bool) -> None:
    if as_json:
        ctx.say(json.dumps(report_json(fw, report), ensure_ascii=False, indent=2))
    else:
        ctx.say(report_text(ctx.t, fw, report))


def cmd_rank(ctx: Context, args: argparse.Namespace) -> int:
    t = ctx.t
    fw = _framework(ctx, args.framework)
    document = _json_file(ctx, args.units)
    units = document.get("units") if isinstance(document, dict) else None
    if not isinstance(units, list) or not units:
        ctx.fail(t("cli.units_shape", path=args.units))
    answers: dict[str, Any] = {}
    meta: dict[str, dict[str, Any]] = {}
    for i, unit in enumerate(units):
        if not isinstance(unit, dict) or not isinstance(unit.get("id"), str) or not unit["id"]:
            ctx.fail(t("cli.unit_shape", path=args.units, index=i + 1))
        uid = unit["id"]
        if uid in meta:
            ctx.fail(t("cli.unit_duplicate", path=args.units, id=uid))
        answers[uid] = _answers(ctx, fw, {"answers": unit.get("answers", {})}, f"{args.units} [{uid}]")
        meta[uid] = unit
    reports = score_units(fw, answers, _rules(ctx, args))
    rows = rank(
        RankEntry.from_report(
            uid,
            rep,
            name=str(meta[uid].get("name") or uid),
            appraised=meta[uid].get("appraised", True) is not False,
            district=meta[uid].get("district"),
        )
        for uid, rep in reports.items()
    )
    if args.json:
        ctx.say(json.dumps([_rank_json(r, reports[r.unit_id]) for r in rows], ensure_ascii=False, indent=2))
        return 0
    ctx.say(fw.title)
    header = [t("rank.col.rank"), t("rank.col.unit"), t("rank.col.total"), t("rank.col.band")]
    has_district = any(r.district for r in rows)
    if has_district:
        header.insert(2, t("rank.col.district_rank"))
    table = [header]
    for r in rows:
        band = reports[r.unit_id].band if r.appraised else None
        line = [
            str(r.rank),
            r.name + ("" if r.appraised else " *"),
            t.number(r.total),
            band.label if band else "—",
        ]
        if has_district:
            line.insert(2, f"{r.district_rank} ({r.district})" if r.district else "—")
        table.append(line)
    ctx.table(table)
    if not all(r.appraised for r in rows):
        ctx.say(t("rank.not_appraised_note"))
    return 0


def _rank_json(row: RankRow, report: Report) -> dict[str, Any]:
    band = report.band if row.appraised else None
    return {
        "rank": row.rank,
        "district_rank": row.district_rank,
        "id": row.unit_id,
        "name": row.name,
        "district": row.district,
        "total": float(row.total),
        "index": float(round_index(report.index)) if row.appraised else 0.0,
        "band": band.label if band else None,
        "appraised": row.appraised,
    }


# -- parser --------------------------------------------------------------------------------------


def _parser(t: Translator) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dtibot", description=t("cli.help.dtibot"))
    p.add_argument("--lang", choices=LANGUAGES, help=t("cli.help.lang"))
    p.add_argument("--by", metavar="NAME", help=t("cli.help.by"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fw = sub.add_parser("framework", help=t("cli.help.framework"))
    fsub = fw.add_subparsers(dest="action", required=True, metavar="ACTION")
    fsub.add_parser("list", help=t("cli.help.framework_list")).set_defaults(func=cmd_framework_list)
    show = fsub.add_parser("show", help=t("cli.help.framework_show"))
    show.add_argument("framework", metavar="ID|FILE")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_framework_show)
    validate = fsub.add_parser("validate", help=t("cli.help.framework_validate"))
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(func=cmd_framework_validate)
    imp = fsub.add_parser("import", help=t("cli.help.framework_import"))
    imp.add_argument("file", metavar="FILE.xlsx|docx|csv|tsv")
    imp.add_argument("-o", "--output", required=True, metavar="X.yaml")
    imp.add_argument("--id")
    imp.add_argument("--title")
    imp.add_argument("--level", default="commune", choices=[u.value for u in UnitLevel])
    imp.add_argument("--version", default="1")
    imp.add_argument("--decision-number")
    imp.add_argument("--decision-date", metavar="DD/MM/YYYY")
    imp.add_argument("--issuer")
    imp.add_argument("--sheet")
    imp.add_argument("--report", metavar="REPORT.xlsx", help=t("cli.help.import_report"))
    imp.set_defaults(func=cmd_framework_import)
    exp = fsub.add_parser("export", help=t("cli.help.framework_export"))
    exp.add_argument("framework", metavar="ID|FILE")
    exp.add_argument("-o", "--output", required=True, metavar="X.yaml|xlsx|csv|tsv")
    exp.set_defaults(func=cmd_framework_export)

    def scoring_options(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--json", action="store_true", help=t("cli.help.json"))
        cmd.add_argument("--ignore-evidence", action="store_true", help=t("cli.help.ignore_evidence"))
        cmd.add_argument(
            "--evidence-deadline", metavar="YYYY-MM-DDTHH:MM", help=t("cli.help.evidence_deadline")
        )

    sc = sub.add_parser("score", help=t("cli.help.score"))
    sc.add_argument("framework", metavar="FRAMEWORK")
    sc.add_argument("answers", metavar="ANSWERS.json")
    scoring_options(sc)
    sc.set_defaults(func=cmd_score)
    rk = sub.add_parser("rank", help=t("cli.help.rank"))
    rk.add_argument("framework", metavar="FRAMEWORK")
    rk.add_argument("units", metavar="UNITS.json")
    scoring_options(rk)
    rk.set_defaults(func=cmd_rank)
    cli_admin.register(sub, t)
    return p


def _language(argv: Sequence[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return os.environ.get("DTI_LANG", DEFAULT_LANGUAGE)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    t = Translator(_language(argv))
    ctx = Context(t, out or sys.stdout, err or sys.stderr)
    args = _parser(t).parse_args(argv)
    func: Callable[[Context, argparse.Namespace], int] = args.func
    try:
        code = func(ctx, args)
        ctx.out.flush()  # a reader that went away is noticed here, not at exit
        return code
    except UsageProblem as exc:
        print(str(exc), file=ctx.err)
        return 2
    except DBAPIError as exc:
        line = cli_admin.unreachable(t, exc)
        if line is None:
            raise
        print(line, file=ctx.err)
        return 1
    except BrokenPipeError:
        if ctx.out is sys.stdout:  # nothing more can be written there, not even at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
