"""The conversation engine, identical on every channel and pure.

`step(snapshot, inbound, now) -> Decision`: given what the database knows about this chat (the
snapshot), what the user just sent (the inbound) and the time, it decides what to record (events),
what the session looks like afterwards, and what to reply — as message keys with parameters and
buttons, never as finished text. Channels, storage and rendering live elsewhere.
"""

from flows.engine import step
from flows.model import Decision, Inbound, InboundKind, Snapshot

__all__ = ["Decision", "Inbound", "InboundKind", "Snapshot", "step"]
