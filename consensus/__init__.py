"""govledger consensus: a PBFT replica as a pure state machine, and its simulator.

Theory of operation
===================

Setting. n validators (the set is on the chain, see ``ledger.chain``); f =
(n - 1) // 3 may be Byzantine. A *quorum* is ceil((n + f + 1) / 2) — 2f + 1
when n = 3f + 1 — so any two quorums share an honest validator. The primary
of view v is validator ``v mod n``. One PBFT sequence number is one block
height; a "request" is a batch of transactions (the block body).

Message flow (normal case). The primary takes a batch
from its mempool (transactions are gossiped to every validator on arrival),
executes it speculatively on top of the last committed block and broadcasts
PRE-PREPARE(v, n, block): the block header carries the resulting tx, result
and state roots, so the digest the replicas agree on fixes the outcome of
execution. A backup accepts it if it is in view v and not changing views,
the sender is the primary, n is the next height and within the watermarks,
it has not accepted another digest for (v, n), every transaction signature
verifies, the block time is after its parent's and within the allowed skew
of the backup's clock, and re-executing the block gives exactly the header's
roots; it then persists its vote and broadcasts PREPARE(v, n, d). With the
pre-prepare and quorum - 1 matching prepares a replica is *prepared*: it
persists the prepared certificate and broadcasts COMMIT(v, n, d), signed
once, over (chain_id, v, n, d) — the signature its block's certificate will
carry. With a quorum of COMMITs matching (v, n, d) it has *committed*: the
block and those signatures (its certificate, which names v: votes of
different views never make one) are appended in one atomic write, transactions are
answered, and the primary proposes the next height. Votes that can change
nothing any more — a PREPARE once this replica has sent its COMMIT for that
height and view, any PREPARE or COMMIT for a height already executed — are
dropped before their signature is checked.

Blocks in flight (``pipeline_depth``, node.toml ``[consensus]``, 1 by
default). With 1, a replica takes a pre-prepare for height n + 1 only after
executing n. With d > 1 the primary proposes n + 1 as soon as it is prepared
at n, on top of n's speculative execution, and a replica takes a pre-prepare
for n + 1 (up to d above its head) once it is itself prepared at n in the
same view and n changes neither the settings nor the validator set; blocks
still commit and are appended strictly in order. Because a correct replica
votes for n + 1 only when prepared at its parent, a prepared certificate for
n + 1 has f + 1 correct replicas prepared at n behind it, so the prepared
certificates a view change collects link into a chain
(:mod:`consensus.newview`). A COMMIT for height c proves only that its
sender executed c - 8 (the most any replica may have in flight), which is
all state transfer infers from it.

Checkpoints. After every K-th block (genesis ``checkpoint_interval``) each
validator broadcasts CHECKPOINT(n, state_root, d); a quorum of matching ones
makes a stable checkpoint, the low watermark h. The high watermark is
H = h + L. Messages for heights at or below h are dropped (checkpoints before
their signature is checked) and the logs below it are discarded; all queues
are bounded. A validator catching up does not sign the checkpoints of heights
a whole window L below what f + 1 others hold: a quorum is past them.

View change. A validator holding a transaction it has not seen executed runs
a timer, restarted whenever a block commits. When it fires, the validator
stops accepting normal-case messages and broadcasts VIEW-CHANGE(v + 1):
its stable checkpoint with proof, the commit certificate of its last
executed block, and its prepared certificates for the heights above it, as
far as they run (prepared, not only committed: forgetting these loses
committed blocks).
A validator joins a higher view early only on the word of f + 1 others —
one replica announcing a huge view number moves nobody. Once a quorum asks
for the same view the view-change timer runs; if no NEW-VIEW arrives in time
the validator asks for the next view and doubles the timeout. Having asked for
view v, it votes in no view below v again: neither a held pre-prepare nor a
NEW-VIEW for a lower view is taken (its VIEW-CHANGE already told the others
what it was prepared at). Leaving a view doubles the request timer's timeout
(up to the maximum), and a block that commits within a quarter of it halves it
again, down to the base: blocks that load, not a faulty primary, made slower
than the base then cost a view change or two, not one per block. The new
primary, with a quorum of VIEW-CHANGEs, sends NEW-VIEW carrying them and the
blocks it must re-propose, height by height: a pure function of those messages
(:func:`consensus.newview.select`) that every backup recomputes.

State transfer. A replica that learns from f + 1 others (statuses,
checkpoints, commits) or from a valid NEW-VIEW that blocks exist beyond its
head fetches them with their commit certificates, verifies each certificate
against the validator set of that height, re-executes the block and checks
its roots before appending it. A peer's claimed height alone is never
trusted. The transactions of a certified block are not checked again (the
quorum that committed it refused any bad signature and its roots record
their verdict); should the roots differ, the block is executed again with
every signature checked.

Reconfiguration. A committed validator-set change takes effect at the first
height after the next checkpoint (``ledger.chain.effective_height``); every
replica switches when it executes the block before it. Each message and
certificate is judged against the set of its own height.

What is persisted, when, and why (``Persist`` effects, synced before the
messages that depend on them leave): the current view and view-change
target, before a VIEW-CHANGE; per height in flight, the vote (view, height,
digest, phase), before a PREPARE or COMMIT — after a restart a replica never
votes for a different digest at the same view and height; the prepared
certificate, before the COMMIT — so a VIEW-CHANGE after a restart still
carries it; the primary's own pre-prepare, before sending it — so a restarted
primary re-offers the same blocks, never others; the last NEW-VIEW, to show
replicas that missed it — a restarted primary re-offers its re-proposals, and
a restarted replica still knows the heights it proved committed (fetched, never
taken again); and the stable checkpoint's proof, so that a network whose every
replica restarted keeps its watermarks. (A restarted replica also signs the
checkpoints of its last window again and relays its own to peers below them:
stores from before the proof was kept, and checkpoints a stop cut off, do not
stall it.) Blocks are appended, atomically with their state changes, before any
client is told they committed.
"""

from consensus.effects import Append, Broadcast, Effect, Persist, Send
from consensus.replica import Replica, ReplicaConfig

__all__ = ["Append", "Broadcast", "Effect", "Persist", "Replica", "ReplicaConfig", "Send"]
