"""Effects: what the replica asks its driver to do, in order.

Order contract: the driver carries out the effects of one call in list order
and completes each before the next. In particular a :class:`Persist` is
durable (synced) before any later :class:`Send`/:class:`Broadcast` leaves,
and an :class:`Append` is durable before the next call into the replica —
the replica relies on both to never contradict a vote after a crash and to
find its last appended block in the chain on the next call.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Message
from ledger.block import CommitCertificate
from ledger.chain import Pending


@dataclass(frozen=True, slots=True)
class Send:
    to: bytes  # the peer validator's public key
    message: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send to every other validator of the current set."""

    message: Message


@dataclass(frozen=True, slots=True)
class Persist:
    """Write these consensus-state keys durably (None deletes) before going on."""

    changes: dict[bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class Append:
    """A block is committed: append it with its certificate (atomic, durable)."""

    pending: Pending
    certificate: CommitCertificate


Effect = Send | Broadcast | Persist | Append
