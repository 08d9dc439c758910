"""Message keys the templates compose from a value (`"web.item." ~ status`), declared here so that
`make i18n` extracts them and the catalog test sees them translated."""

from __future__ import annotations

from scoring.messages import N_

ITEM = (
    N_("web.item.unanswered"),
    N_("web.item.answered"),
    N_("web.item.missing_evidence"),
    N_("web.item.na"),
    N_("web.item.accept"),
    N_("web.item.adjust"),
    N_("web.item.return"),
)
DECISION = (N_("web.decision.accept"), N_("web.decision.adjust"), N_("web.decision.return"))
ROLE = (N_("web.role.admin"), N_("web.role.reviewer"), N_("web.role.leader"), N_("web.role.respondent"))
# the audit trail's actions (an action without a label is shown by its code)
AUDIT = (
    N_("web.action.answer.save"),
    N_("web.action.evidence.add"),
    N_("web.action.assessment.status"),
    N_("web.action.appraisal.decide"),
    N_("web.action.member.join"),
    N_("web.action.member.join_failed"),
    N_("web.action.member.language"),
    N_("web.action.member.reminders"),
    N_("web.action.member.remove"),
    N_("web.action.deadline.extend"),
    N_("web.action.web.link_issued"),
    N_("web.action.web.link_refused"),
    N_("web.action.web.signin"),
    N_("web.action.web.signout"),
    N_("web.action.web.signout_everywhere"),
)
COLUMNS = (
    N_("web.col.code"),
    N_("web.col.unit"),
    N_("web.col.district"),
    N_("web.col.state"),
    N_("web.col.answered"),
    N_("web.col.total"),
    N_("web.col.missing"),
    N_("web.col.claimed"),
    N_("web.col.appraised"),
    N_("web.col.activity"),
    N_("web.col.deadline"),
    N_("web.col.reminders"),
    N_("web.col.sent"),
    N_("web.col.queued"),
    N_("web.col.deferred"),
    N_("web.col.undeliverable"),
)
