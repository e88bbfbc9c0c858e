"""Planted bugs: evidence that the simulator's checks have teeth.

Each mutant is the real replica with one classic PBFT mistake, made by
overriding one small seam. ``python -m consensus.sim --mutants`` runs each
through seeds until the simulator reports a safety or liveness violation,
and fails if any mutant survives its seed budget.
"""

from __future__ import annotations

from dataclasses import replace

from consensus.effects import Effect
from consensus.messages import Message, PreparedCert
from consensus.replica import K_STABLE, Replica, ReplicaConfig
from ledger.chain import Chain
from ledger.crypto import PrivateKey


class CommitQuorumMinusOne(Replica):
    """Commits with 2f COMMITs instead of 2f+1."""

    def commit_quorum(self) -> int:
        return self.validators.quorum - 1


class DropPreparedCertificates(Replica):
    """VIEW-CHANGE forgets prepared (not yet committed) certificates."""

    def prepared_for_view_change(self) -> list[PreparedCert]:
        return []


class DropPipelinedCertificates(Replica):
    """VIEW-CHANGE carries the prepared certificate of the next height only, forgetting
    those of the blocks in flight above it (a bug only a pipelining replica can have: this
    one keeps two heights in flight, whatever the seed's configuration)."""

    def __init__(self, chain: Chain, key: PrivateKey, config: ReplicaConfig) -> None:
        super().__init__(chain, key, replace(config, pipeline_depth=2))

    def prepared_for_view_change(self) -> list[PreparedCert]:
        return super().prepared_for_view_change()[:1]


class SkipSignatureCheck(Replica):
    """Believes every message and commit vote without checking signatures."""

    def verify(self, msg: Message) -> bool:
        return True


class WatermarkOffByOne(Replica):
    """Treats the height just above the stable checkpoint as below the low watermark."""

    def in_watermarks(self, height: int) -> bool:
        return self.stable + 1 < height <= self.stable + self.config.watermark_window


class NoPersistBeforeSend(Replica):
    """Sends votes without persisting them first, so a restart forgets them."""

    def persist(self, changes: dict[bytes, bytes | None]) -> list[Effect]:
        return []


class ForgetStableCheckpoint(Replica):
    """Keeps no stable checkpoint across a restart, and does not sign its recent checkpoints
    again: a network whose every replica restarts past its first watermark window can
    neither propose nor form a checkpoint any more (the bug of session 13)."""

    def persist(self, changes: dict[bytes, bytes | None]) -> list[Effect]:
        return super().persist({k: v for k, v in changes.items() if k != K_STABLE})

    def _sign_recent_checkpoints(self) -> list[Effect]:
        return []


MUTANTS: dict[str, type[Replica]] = {
    "commit_quorum_2f": CommitQuorumMinusOne,
    "drop_prepared_certs": DropPreparedCertificates,
    "drop_pipelined_certs": DropPipelinedCertificates,
    "skip_signature_check": SkipSignatureCheck,
    "watermark_off_by_one": WatermarkOffByOne,
    "no_persist_before_send": NoPersistBeforeSend,
    "forget_stable_checkpoint": ForgetStableCheckpoint,
}
