"""apply(snapshot, events, now) → the snapshot as storage will read it back once the events are recorded.

The one in-memory meaning of every event: the engine looks ahead with it (the running total after an
answer, what comes after a decision), and the tests use it as their storage. Storage records the same
events as rows; a test compares the two (tests/test_apply.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import replace

from flows.model import (
    AddEvidence,
    AnswerView,
    CloseAppraisal,
    Decide,
    DecisionView,
    Event,
    EvidenceView,
    IssueWebLink,
    JoinFailed,
    JoinFailure,
    JoinUnit,
    MemberView,
    RequestSubmission,
    Resubmit,
    Review,
    ReviewedUnit,
    SaveAnswer,
    SendReturns,
    SetLanguage,
    SetReminders,
    Snapshot,
    Submit,
)


def apply(snap: Snapshot, events: Iterable[Event], now: dt.datetime) -> Snapshot:
    for event in events:
        snap = _apply(snap, event, now)
    return snap


def evidence_view(event: AddEvidence, now: dt.datetime) -> EvidenceView:
    """The evidence item an event adds, as the engine sees it."""
    if event.file is not None:
        kind, label = "file", event.file.name
    elif event.citation is not None:
        kind, label = "citation", event.citation.number
    else:
        kind, label = "link", event.url or ""
    sha256 = event.file.sha256 if event.file is not None else None
    return EvidenceView(kind, label, now, event.late, sha256, event.citation, event.note)


def _apply(snap: Snapshot, event: Event, now: dt.datetime) -> Snapshot:
    if isinstance(event, SaveAnswer):
        old = snap.answers.get(event.code)
        view = AnswerView(
            event.value,
            event.not_applicable,
            event.reason,
            old.revision + 1 if old is not None else 1,
            old.evidence if old is not None else (),
        )
        return replace(snap, answers={**snap.answers, event.code: view}, revision=snap.revision + 1)
    if isinstance(event, AddEvidence):
        old = snap.answers.get(event.code)
        if old is None:  # evidence of an unanswered indicator is not part of the engine's view
            return replace(snap, revision=snap.revision + 1)
        view = replace(old, evidence=(*old.evidence, evidence_view(event, now)))
        return replace(snap, answers={**snap.answers, event.code: view}, revision=snap.revision + 1)
    if isinstance(event, RequestSubmission):
        return replace(snap, status=event.to)
    if isinstance(event, Submit | Resubmit):
        return replace(snap, status=event.to, submitted_at=now)
    if isinstance(event, Decide):
        return _on_review(snap, lambda unit: _decided(unit, event, now))
    if isinstance(event, SendReturns | CloseAppraisal):
        to = event.to
        return _on_review(snap, lambda unit: replace(unit, status=to))
    if isinstance(event, JoinUnit):
        invite = snap.invite
        assert invite is not None and invite.code == event.invite_code
        member = MemberView(0, invite.role, invite.unit_id, invite.unit_code, invite.unit_name)
        return replace(snap, member=member, invite=None)
    if isinstance(event, JoinFailed):
        if event.reason is JoinFailure.RATE_LIMITED:  # not a guess: the limit is not pushed further out
            return snap
        return replace(snap, join_failures=(*snap.join_failures, now))
    if isinstance(event, SetLanguage):
        assert snap.member is not None
        return replace(snap, member=replace(snap.member, language=event.language))
    assert isinstance(event, SetReminders | IssueWebLink)  # not part of the engine's view
    return snap


def _decided(unit: ReviewedUnit, event: Decide, now: dt.datetime) -> ReviewedUnit:
    old = unit.decisions.get(event.code)
    view = DecisionView(
        event.decision,
        event.points,
        event.comment,
        (old.revision if old is not None else 0) + 1,
        event.supplement_due,
        now,
    )
    return replace(unit, decisions={**unit.decisions, event.code: view})


def _on_review(snap: Snapshot, change: Callable[[ReviewedUnit], ReviewedUnit]) -> Snapshot:
    assert snap.review is not None and snap.review.unit is not None
    return replace(snap, review=Review(snap.review.queue, change(snap.review.unit)))
