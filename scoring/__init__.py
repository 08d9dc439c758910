"""The shared scoring core: frameworks as data, exact scores, classifications and rankings.

Pure: plain data in, plain data out; no I/O, no clock, no locale. Channels, storage and the CLI
hand their data to these functions and render what comes back.
"""

from scoring.answers import Answer, AnswerError, Evidence, parse_answers, parse_value
from scoring.engine import Report, Rules, Status, score, score_units
from scoring.gate import FrameworkInvalid, GateIssue, GateResult, build_framework, load_framework
from scoring.model import Framework, Indicator, Ratio
from scoring.ranking import RankEntry, RankRow, rank

__all__ = [
    "Answer",
    "AnswerError",
    "Evidence",
    "Framework",
    "FrameworkInvalid",
    "GateIssue",
    "GateResult",
    "Indicator",
    "RankEntry",
    "RankRow",
    "Ratio",
    "Report",
    "Rules",
    "Status",
    "build_framework",
    "load_framework",
    "parse_answers",
    "parse_value",
    "rank",
    "score",
    "score_units",
]
