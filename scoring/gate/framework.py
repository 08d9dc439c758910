"""Checking a whole framework: its top-level fields, decision, groups and their sums, a known structure,
then building the `Framework`; `load_framework` parses YAML text first."""

from __future__ import annotations

import re

import yaml

from scoring.decisions import STRUCTURES
from scoring.gate.checker import Checker, join, read_date
from scoring.gate.classification import check_classification, check_levels
from scoring.gate.indicators import check_indicator
from scoring.gate.issues import FrameworkInvalid, GateIssue, GateKey, GateResult
from scoring.model import (
    Decision,
    Framework,
    FrameworkKind,
    Group,
    Indicator,
    NotApplicablePolicy,
    UnitLevel,
)
from scoring.numbers import plain, total
from scoring.textfold import fold

SUPPORTED_SPEC_VERSIONS = (1,)

_TOP_KEYS = (
    "spec_version",
    "id",
    "version",
    "title",
    "level",
    "kind",
    "decision",
    "note",
    "not_applicable",
    "classification",
    "structure",
    "levels",
    "max_points",
    "groups",
)
_GROUP_KEYS = ("id", "name", "max_points", "indicators")
_DECISION_KEYS = ("number", "date", "issuer")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def check_structure(c: Checker, structure_id: str, groups: list[Group], level: UnitLevel | None) -> None:
    structure = STRUCTURES.get(structure_id)
    if structure is None:
        c.error(GateKey.STRUCTURE_UNKNOWN, "structure", value=structure_id, structures=", ".join(STRUCTURES))
        return
    if level is not None and level is not structure.level:
        c.error(
            GateKey.STRUCTURE_LEVEL,
            "level",
            structure=structure_id,
            expected=structure.level.value,
            found=level.value,
        )
    if len(groups) != len(structure.groups):
        c.error(
            GateKey.STRUCTURE_GROUP_COUNT,
            "groups",
            structure=structure_id,
            expected=len(structure.groups),
            found=len(groups),
        )
        return
    for i, (group, spec) in enumerate(zip(groups, structure.groups, strict=True)):
        if fold(group.name) != fold(spec.name) or group.max_points != spec.max_points:
            c.error(
                GateKey.STRUCTURE_GROUP,
                f"groups[{i}]",
                structure=structure_id,
                expected=f"{spec.name} ({plain(spec.max_points)})",
                found=f"{group.name} ({plain(group.max_points)})",
            )


def build_framework(data: object, source: str) -> GateResult:
    """Validate parsed YAML `data` from `source`; raise `FrameworkInvalid` listing every error."""
    c = Checker(source)
    top = c.mapping(data, "")
    if top is None:
        raise FrameworkInvalid(source, c.errors, c.warnings)
    c.keys(top, _TOP_KEYS, ("spec_version", "id", "version", "title", "level", "decision", "groups"), "")
    spec_version = top.get("spec_version")
    if spec_version is not None and spec_version not in SUPPORTED_SPEC_VERSIONS:
        c.error(
            GateKey.SPEC_VERSION,
            "spec_version",
            found=spec_version,
            supported=", ".join(map(str, SUPPORTED_SPEC_VERSIONS)),
        )
        raise FrameworkInvalid(source, c.errors, c.warnings)
    fid = c.identifier(top.get("id"), "id")
    if fid is not None and not _ID_RE.match(fid):
        c.error(GateKey.BAD_ID, "id", value=fid)
    version = c.identifier(top.get("version"), "version")
    if isinstance(top.get("version"), float):
        c.error(GateKey.CODE_NOT_TEXT, "version", value=top.get("version"))
    title = c.text(top.get("title"), "title")
    level = c.choice(top.get("level"), UnitLevel, [u.value for u in UnitLevel], "level")
    kind = c.choice(top.get("kind", "points"), FrameworkKind, [k.value for k in FrameworkKind], "kind")
    na_policy = c.choice(
        top.get("not_applicable", "peer_average"),
        NotApplicablePolicy,
        [p.value for p in NotApplicablePolicy],
        "not_applicable",
    )
    note = c.text(top.get("note"), "note", required=False)
    decision = Decision(None, None)
    ddata = c.mapping(top.get("decision"), "decision") if top.get("decision") is not None else None
    if ddata is not None:
        c.keys(ddata, _DECISION_KEYS, (), "decision")
        number = c.text(ddata.get("number"), "decision.number", required=False)
        decision = Decision(
            number,
            read_date(c, ddata.get("date"), "decision.date"),
            c.text(ddata.get("issuer"), "decision.issuer", required=False),
        )
        if number is None:
            c.warn(GateKey.DECISION_NUMBER_MISSING, "decision.number")
    levels, level_index = check_levels(c, top.get("levels"), kind)

    groups: list[Group] = []
    indicators: list[Indicator] = []
    seen_codes: dict[str, str] = {}
    seen_groups: set[str] = set()
    raw_groups = c.seq(top.get("groups"), "groups") if top.get("groups") is not None else None
    if raw_groups is not None and not raw_groups:
        c.error(GateKey.NO_GROUPS, "groups")
    for gi, graw in enumerate(raw_groups or []):
        gf = f"groups[{gi}]"
        gdata = c.mapping(graw, gf)
        if gdata is None:
            continue
        c.keys(gdata, _GROUP_KEYS, ("id", "name", "indicators"), gf)
        if isinstance(gdata.get("id"), float):
            c.error(GateKey.CODE_NOT_TEXT, join(gf, "id"), value=gdata.get("id"))
            continue
        gid = c.identifier(gdata.get("id"), join(gf, "id"))
        gname = c.text(gdata.get("name"), join(gf, "name"))
        gmax = c.number(gdata.get("max_points"), join(gf, "max_points"), positive=True)
        if gid is None or gname is None:
            continue
        if gid in seen_groups:
            c.error(GateKey.DUPLICATE_GROUP, join(gf, "id"), id=gid)
        seen_groups.add(gid)
        items = (
            c.seq(gdata.get("indicators"), join(gf, "indicators"))
            if gdata.get("indicators") is not None
            else []
        )
        if not items:
            c.error(GateKey.EMPTY_GROUP, join(gf, "indicators"), group=gname)
        members = [
            check_indicator(c, item, f"{gf}.indicators[{ii}]", gid, level_index, seen_codes)
            for ii, item in enumerate(items or [])
        ]
        valid = [m for m in members if m is not None]
        indicators.extend(valid)
        if len(valid) == len(members) and valid:
            summed = total(m.max_points for m in valid)
            if gmax is None and gdata.get("max_points") is None:
                gmax = summed
            elif gmax is not None and gmax != summed:
                c.error(
                    GateKey.GROUP_MAX_MISMATCH,
                    join(gf, "max_points"),
                    group=gname,
                    declared=plain(gmax),
                    sum=plain(summed),
                )
        if gmax is not None:
            groups.append(Group(gid, gname, gmax, tuple(m.code for m in valid)))

    max_points = total(g.max_points for g in groups)
    declared_max = c.number(top.get("max_points"), "max_points", positive=True)
    if declared_max is not None and not c.errors and declared_max != max_points:
        c.error(GateKey.TOTAL_MAX_MISMATCH, "max_points", declared=plain(declared_max), sum=plain(max_points))
    structure = top.get("structure")
    if structure is not None and not c.errors:
        check_structure(c, str(structure), groups, level)
    classification = check_classification(c, top.get("classification"), None if c.errors else max_points)
    if kind is FrameworkKind.MATURITY and level_index:
        gated = {lid for ind in indicators for lid in ind.gates}
        for lvl in levels:
            if lvl.id not in gated:
                c.warn(GateKey.LEVEL_WITHOUT_INDICATORS, "levels", level=lvl.id)

    if c.errors:
        raise FrameworkInvalid(source, c.errors, c.warnings)
    assert fid is not None and version is not None and title is not None and level is not None
    assert kind is not None and na_policy is not None
    framework = Framework(
        id=fid,
        version=version,
        title=title,
        level=level,
        kind=kind,
        decision=decision,
        groups=tuple(groups),
        indicators=tuple(indicators),
        classification=classification,
        not_applicable=na_policy,
        levels=levels,
        structure=str(structure) if structure is not None else None,
        note=note,
        spec_version=int(spec_version) if isinstance(spec_version, int) else 1,
    )
    return GateResult(framework, tuple(c.warnings))


def load_framework(text: str, source: str) -> GateResult:
    """Parse YAML `text` read from `source` (used only to name it in messages) and validate it."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        issue = GateIssue(
            GateKey.YAML_SYNTAX,
            source,
            "",
            None,
            {
                "line": str(mark.line + 1 if mark else 0),
                "column": str(mark.column + 1 if mark else 0),
                "problem": str(exc.problem or exc),
            },
        )
        raise FrameworkInvalid(source, [issue], []) from None
    except yaml.YAMLError as exc:
        issue = GateIssue(
            GateKey.YAML_SYNTAX, source, "", None, {"line": "0", "column": "0", "problem": str(exc)}
        )
        raise FrameworkInvalid(source, [issue], []) from None
    return build_framework(data, source)
