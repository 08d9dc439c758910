"""Persistence for DTI Assistant: the only package that talks SQL or writes evidence files.

- `storage.db`: engine creation (SQLite pragmas, PostgreSQL pre-ping), the transactional `Database.session()`,
  the `UTCDateTime` column type and `NotMigrated`, raised by `Database.require_current()`.
- `storage.models`: the SQLModel tables; the schema itself is created only by Alembic migrations.
- `storage.migrate`: Alembic configured from code (`upgrade`, `downgrade`, `current`, `head`).
- `storage.evidence`: the content-addressed, write-once evidence file store.

SQLite (WAL, foreign keys on) is the embedded default and PostgreSQL the production backend; both run
the same migrations and the same tests.
"""

from storage.db import Database, NotMigrated, UTCDateTime, database_url, make_engine, utcnow
from storage.evidence import (
    EvidenceConflict,
    EvidenceRejected,
    EvidenceStore,
    StoredFile,
    evidence_dir,
    sanitize_name,
)
from storage.models import (
    AnswerRevision,
    Assessment,
    AuditLog,
    Conversation,
    Evidence,
    Invite,
    JoinAttempt,
    Member,
    Outbox,
    Period,
    ProcessedInbound,
    Unit,
)

__all__ = [
    "AnswerRevision",
    "Assessment",
    "AuditLog",
    "Conversation",
    "Database",
    "Evidence",
    "EvidenceConflict",
    "EvidenceRejected",
    "EvidenceStore",
    "Invite",
    "JoinAttempt",
    "Member",
    "NotMigrated",
    "Outbox",
    "Period",
    "ProcessedInbound",
    "StoredFile",
    "UTCDateTime",
    "Unit",
    "database_url",
    "evidence_dir",
    "make_engine",
    "sanitize_name",
    "utcnow",
]
