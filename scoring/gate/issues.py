"""What the gate reports: each problem as a `GateIssue` under a `GateKey`, a message key of the
catalogs that names the parameters its text needs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from scoring.messages import N_
from scoring.model import (
    Framework,
)


class GateKey(StrEnum):
    """A problem the gate reports: its catalog key, and the parameters the key's text needs (besides the
    indicator code every issue carries). `tests/test_gate_keys.py` checks them against both catalogs."""

    params: frozenset[str]

    def __new__(cls, msgid: str, *params: str) -> GateKey:
        member = str.__new__(cls, msgid)
        member._value_ = msgid
        member.params = frozenset(params)
        return member

    BAD_DATE = N_("gate.bad_date"), "value"
    BAD_ID = N_("gate.bad_id"), "value"
    BAD_NUMBER = N_("gate.bad_number"), "value"
    BAD_VALUE = N_("gate.bad_value"), "allowed", "value"
    BAD_VALUE_DID_YOU_MEAN = N_("gate.bad_value_did_you_mean"), "allowed", "suggestion", "value"
    BAND_ABOVE_MAX = N_("gate.band_above_max"), "band", "max", "min"
    BAND_BOTTOM_GAP = N_("gate.band_bottom_gap"), "band", "min"
    BAND_EMPTY = N_("gate.band_empty"), "band", "below", "min"
    BAND_GAP = N_("gate.band_gap"), "band", "end", "other", "start"
    BAND_OVERLAP = N_("gate.band_overlap"), "at", "band", "other"
    BAND_TOP_GAP = N_("gate.band_top_gap"), "band", "end", "start"
    BANDS_EMPTY = N_("gate.bands_empty")
    CODE_NOT_TEXT = N_("gate.code_not_text"), "value"
    DECISION_NUMBER_MISSING = N_("gate.decision_number_missing")
    DUPLICATE_BAND = N_("gate.duplicate_band"), "id"
    DUPLICATE_CODE = N_("gate.duplicate_code"), "group"
    DUPLICATE_GROUP = N_("gate.duplicate_group"), "id"
    DUPLICATE_LEVEL = N_("gate.duplicate_level"), "id"
    DUPLICATE_OPTION = N_("gate.duplicate_option"), "key"
    EMPTY_GROUP = N_("gate.empty_group"), "group"
    EVIDENCE_DESCRIPTION_MISSING = N_("gate.evidence_description_missing")
    FRACTION_RANGE = N_("gate.fraction_range"), "value"
    FULL_FROM_NOT_BELOW_TARGET = N_("gate.full_from_not_below_target"), "target", "value"
    GATES_WITHOUT_LEVELS = N_("gate.gates_without_levels")
    GROUP_MAX_MISMATCH = N_("gate.group_max_mismatch"), "declared", "group", "sum"
    GUIDANCE_MISSING = N_("gate.guidance_missing")
    KEY_NOT_FOR_METHOD = N_("gate.key_not_for_method"), "key", "method"
    LABELS_NOT_ALLOWED = N_("gate.labels_not_allowed"), "type"
    LEVEL_UNDECLARED = N_("gate.level_undeclared"), "level", "levels"
    LEVEL_UNDECLARED_DID_YOU_MEAN = N_("gate.level_undeclared_did_you_mean"), "level", "levels", "suggestion"
    LEVEL_WITHOUT_INDICATORS = N_("gate.level_without_indicators"), "level"
    LEVELS_WITHOUT_MATURITY = N_("gate.levels_without_maturity")
    MATURITY_NEEDS_LEVELS = N_("gate.maturity_needs_levels")
    METHOD_TYPE_MISMATCH = N_("gate.method_type_mismatch"), "method", "methods", "type"
    MISSING_KEY = N_("gate.missing_key"), "key"
    NEGATIVE = N_("gate.negative"), "value"
    NO_GROUPS = N_("gate.no_groups")
    NOT_POSITIVE = N_("gate.not_positive")
    OPTION_NEEDS_POINTS = N_("gate.option_needs_points")
    OPTIONS_NOT_ALLOWED = N_("gate.options_not_allowed"), "type"
    OPTIONS_REQUIRED = N_("gate.options_required"), "type"
    PARTS_CAPPED = N_("gate.parts_capped"), "max", "sum"
    PARTS_UNREACHABLE = N_("gate.parts_unreachable"), "max", "sum"
    POINTS_AND_FRACTION = N_("gate.points_and_fraction")
    POINTS_EXCEED_MAX = N_("gate.points_exceed_max"), "max", "points"
    RATIO_LABELS_MISSING = N_("gate.ratio_labels_missing")
    SCHEME_AND_BANDS = N_("gate.scheme_and_bands")
    SCHEME_SCALE = N_("gate.scheme_scale"), "max", "scale", "scheme"
    SCHEME_UNKNOWN = N_("gate.scheme_unknown"), "schemes", "value"
    SPEC_VERSION = N_("gate.spec_version"), "found", "supported"
    STRUCTURE_GROUP = N_("gate.structure_group"), "expected", "found", "structure"
    STRUCTURE_GROUP_COUNT = N_("gate.structure_group_count"), "expected", "found", "structure"
    STRUCTURE_LEVEL = N_("gate.structure_level"), "expected", "found", "structure"
    STRUCTURE_UNKNOWN = N_("gate.structure_unknown"), "structures", "value"
    TARGET_OVER_100 = N_("gate.target_over_100"), "value"
    TARGET_REQUIRED = N_("gate.target_required")
    THRESHOLD_DECREASING = N_("gate.threshold_decreasing"), "higher", "lower"
    THRESHOLD_NUMBER = N_("gate.threshold_number"), "type", "value"
    THRESHOLD_PERCENT = N_("gate.threshold_percent"), "value"
    THRESHOLD_YES_NO = N_("gate.threshold_yes_no"), "value"
    TIERS_EMPTY = N_("gate.tiers_empty")
    TIERS_ORDER = N_("gate.tiers_order"), "min", "points", "prev_min", "prev_points"
    TOTAL_MAX_MISMATCH = N_("gate.total_max_mismatch"), "declared", "sum"
    UNKNOWN_KEY = N_("gate.unknown_key"), "allowed", "key"
    UNKNOWN_KEY_DID_YOU_MEAN = N_("gate.unknown_key_did_you_mean"), "key", "suggestion"
    WRONG_TYPE = N_("gate.wrong_type"), "expected", "found"
    YAML_SYNTAX = N_("gate.yaml_syntax"), "column", "line", "problem"


class Severity:
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class GateIssue:
    key: GateKey
    source: str
    field: str
    code: str | None = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    severity: str = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.source}: {self.code + ': ' if self.code else ''}{self.field}"
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{where}: {self.key}" + (f" ({params})" if params else "")

    @classmethod
    def of(
        cls,
        key: GateKey,
        source: str,
        fld: str,
        code: str | None,
        params: Mapping[str, object],
        severity: str = Severity.ERROR,
    ) -> GateIssue:
        """The issue, refusing (as a programming error) one whose key's text would miss a parameter."""
        missing = key.params - params.keys()
        if missing:
            raise TypeError(f"{key.value} needs {', '.join(sorted(missing))}")
        return cls(key, source, fld, code, {k: str(v) for k, v in params.items()}, severity)


class FrameworkInvalid(ValueError):
    """The file does not describe a usable framework; `errors` say where and why."""

    def __init__(self, source: str, errors: list[GateIssue], warnings: list[GateIssue]) -> None:
        super().__init__(f"{source}: {len(errors)} error(s); first: {errors[0]}")
        self.source = source
        self.errors = errors
        self.warnings = warnings


@dataclass(frozen=True)
class GateResult:
    framework: Framework
    warnings: tuple[GateIssue, ...]
