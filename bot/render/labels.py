"""Message keys for the enumerations the core returns (statuses, levels, answer types) and the roles
members have."""

from __future__ import annotations

from scoring.engine import Status
from scoring.messages import N_
from scoring.model import AnswerType, UnitLevel

STATUS: dict[Status, str] = {
    Status.ANSWERED: N_("status.answered"),
    Status.MISSING: N_("status.missing"),
    Status.NOT_APPLICABLE: N_("status.not_applicable"),
    Status.EVIDENCE_MISSING: N_("status.evidence_missing"),
    Status.EVIDENCE_LATE: N_("status.evidence_late"),
}

ROLE: dict[str, str] = {
    "respondent": N_("role.respondent"),
    "leader": N_("role.leader"),
    "reviewer": N_("role.reviewer"),
    "admin": N_("role.admin"),
}

LEVEL: dict[UnitLevel, str] = {
    UnitLevel.PROVINCE: N_("level.province"),
    UnitLevel.DEPARTMENT: N_("level.department"),
    UnitLevel.DISTRICT: N_("level.district"),
    UnitLevel.COMMUNE: N_("level.commune"),
}

ANSWER_TYPE: dict[AnswerType, str] = {
    AnswerType.YES_NO: N_("answer_type.yes_no"),
    AnswerType.PERCENTAGE: N_("answer_type.percentage"),
    AnswerType.RATIO: N_("answer_type.ratio"),
    AnswerType.COUNT: N_("answer_type.count"),
    AnswerType.AMOUNT: N_("answer_type.amount"),
    AnswerType.CHOICE: N_("answer_type.choice"),
    AnswerType.PARTS: N_("answer_type.parts"),
    AnswerType.POINTS: N_("answer_type.points"),
}
