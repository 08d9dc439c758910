"""The one loading gate for frameworks: YAML text in, a valid `Framework` (plus warnings) out.

Nothing else builds a `Framework`. Every problem is collected (not just the first) as a `GateIssue`
naming the file, the indicator code and the field, under a `GateKey` whose catalog text says how to fix
it; warnings (a missing guidance text, say) are kept apart from errors, as pyxform does. The checks are
split by what they look at: `checker` (shapes), `indicators`, `classification` and `framework`.
"""

from scoring.gate.framework import SUPPORTED_SPEC_VERSIONS, build_framework, load_framework
from scoring.gate.indicators import COMPATIBLE_METHODS, METHODS
from scoring.gate.issues import FrameworkInvalid, GateIssue, GateKey, GateResult, Severity

__all__ = [
    "COMPATIBLE_METHODS",
    "METHODS",
    "SUPPORTED_SPEC_VERSIONS",
    "FrameworkInvalid",
    "GateIssue",
    "GateKey",
    "GateResult",
    "Severity",
    "build_framework",
    "load_framework",
]
