"""Pure view-change calculations: validating VIEW-CHANGEs and choosing NEW-VIEW's content.

:func:`select` is a pure function of a *set* of VIEW-CHANGE messages (the
order they arrived in cannot change its result — a property test checks
this). Every backup recomputes it from the VIEW-CHANGEs carried in a
NEW-VIEW and rejects the NEW-VIEW if the primary's choice differs.

Rule (PBFT's, for a few blocks in flight): ``committed`` is the highest
height any VIEW-CHANGE proves final with a commit certificate; blocks up to it
are fetched by state transfer, never re-voted. From ``committed + 1`` upwards,
height by height, the new view must re-propose the block of the prepared
certificate with the highest view, while some VIEW-CHANGE carries one at that
height and its block links to the block chosen below it; at the first height
with none, the new primary is free to propose fresh blocks. Ties in view
(impossible with at most f faulty replicas) break on the digest, then on the
encoded pre-prepare, so the result stays deterministic.

Why a run of heights is safe (the replica's pipelining rule): a correct replica
accepts a pre-prepare for height h + 1 only once it is itself prepared at h in
the same view, on the block the new one extends. A prepared certificate for
h + 1 in view v therefore has f + 1 correct replicas behind it that were
prepared at h in view v on its parent, so any quorum of VIEW-CHANGEs holds a
certificate at h of view v or later, and (PBFT's lemma) every such
certificate is for that parent: the highest-view certificates at consecutive
heights always link, and the "links" check only ever cuts off what no correct
replica can have committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from consensus.messages import PURPOSE, PreparedCert, PrePrepare, ViewChange, signing_bytes
from ledger.block import (
    Block,
    CommitCertificate,
    ValidatorSet,
    commit_message,
)
from ledger.codec import encode

Verify = Callable[[bytes, str, bytes, bytes], bool]  # (public key, purpose, message, signature)


@dataclass(frozen=True, slots=True)
class Selection:
    min_stable: int  # highest stable checkpoint among the VIEW-CHANGEs
    committed: int  # highest height proven committed
    reproposals: tuple[PrePrepare, ...]  # to re-propose at committed + 1, + 2, ...
    digests: tuple[bytes, ...]  # their blocks' digests

    @property
    def reproposal(self) -> PrePrepare | None:
        """The pre-prepare to re-propose at ``committed + 1``, if any."""
        return self.reproposals[0] if self.reproposals else None


# The most prepared certificates a VIEW-CHANGE may carry (blocks in flight above its last
# committed one): bounds what a faulty replica can make the others check.
PREPARED_MAX = 8


def executed_height(vc: ViewChange) -> int:
    return vc.last_cert.height if vc.last_cert is not None else 0


def select(view_changes: Iterable[ViewChange], digest_of: Callable[[Block], bytes]) -> Selection:
    vcs = list(view_changes)
    assert vcs, "select needs at least one VIEW-CHANGE"
    min_stable = max(vc.stable_height for vc in vcs)
    committed = max(executed_height(vc) for vc in vcs)
    # The committed block's hash (every certificate at that height names the same block
    # unless a quorum signed two; the largest pair keeps the choice order-free).
    top = max(((c.height, c.block_hash) for vc in vcs if (c := vc.last_cert) is not None),
              default=None)
    prev = top[1] if top is not None and top[0] == committed else None
    by_height: dict[int, list[PrePrepare]] = {}
    for vc in vcs:
        for p in vc.prepared:
            if p.pre_prepare.height > committed:
                by_height.setdefault(p.pre_prepare.height, []).append(p.pre_prepare)
    chosen: list[PrePrepare] = []
    digests: list[bytes] = []
    height = committed + 1
    while height in by_height:
        # Highest view wins; the digest and then the whole encoded pre-prepare break ties,
        # so the result never depends on the order the VIEW-CHANGEs arrived in.
        pp = max(by_height[height], key=lambda p: (p.view, digest_of(p.block), encode(p)))
        if prev is not None and pp.block.header.prev_hash != prev:
            break
        prev = digest_of(pp.block)
        chosen.append(pp)
        digests.append(prev)
        height += 1
    return Selection(min_stable, committed, tuple(chosen), tuple(digests))


def check_prepared_cert(
    cert: PreparedCert,
    validators: ValidatorSet,
    verify: Verify,
    digest_of: Callable[[Block], bytes],
    before_view: int,
    body_ok: Callable[[Block], bool],
) -> str | None:
    """Why ``cert`` is not a valid prepared certificate (None if it is).

    ``body_ok`` checks the transactions against the header's ``tx_root``: the
    votes cover the header only, so a Byzantine ex-primary could otherwise
    pair a prepared header with other transactions.
    """
    pp = cert.pre_prepare
    if pp.view >= before_view:
        return "prepared certificate is not from an earlier view"
    if pp.block.header.height != pp.height:
        return "prepared block height differs from its pre-prepare"
    if not body_ok(pp.block):
        return "prepared block's transactions do not match its tx_root"
    primary = validators.validators[pp.view % validators.size].public_key
    if pp.sender != primary or not verify(pp.sender, PURPOSE, signing_bytes(pp), pp.sig):
        return "prepared certificate's pre-prepare is not signed by that view's primary"
    digest = digest_of(pp.block)
    members = set(validators.public_keys())
    senders = set()
    for p in cert.prepares:
        if (p.view, p.height, p.digest) != (pp.view, pp.height, digest):
            return "a prepare does not match the pre-prepare"
        if p.sender not in members or p.sender == primary or p.sender in senders:
            return "a prepare comes from a non-member, the primary, or twice from one replica"
        if not verify(p.sender, PURPOSE, signing_bytes(p), p.sig):
            return "a prepare signature does not verify"
        senders.add(p.sender)
    if len(senders) < validators.quorum - 1:
        return f"{len(senders)} prepares, {validators.quorum - 1} needed"
    return None


def check_commit_cert(
    cert: CommitCertificate, chain_id: str, validators: ValidatorSet, verify: Verify
) -> str | None:
    """Why ``cert`` does not prove its block committed (None if it does)."""
    members = set(validators.public_keys())
    message = commit_message(chain_id, cert.view, cert.height, cert.block_hash)
    signers = set()
    for s in cert.signatures:
        if s.validator not in members or s.validator in signers:
            return "commit certificate has a non-member or repeated signer"
        if not verify(s.validator, "commit", message, s.sig):
            return "a commit certificate signature does not verify"
        signers.add(s.validator)
    if len(signers) < validators.quorum:
        return f"commit certificate has {len(signers)} signers, {validators.quorum} needed"
    return None


def check_view_change(
    vc: ViewChange,
    chain_id: str,
    set_for: Callable[[int], ValidatorSet],
    verify: Verify,
    digest_of: Callable[[Block], bytes],
    body_ok: Callable[[Block], bool],
) -> str | None:
    """Why ``vc`` is invalid (None if valid). The message signature is checked by the caller.

    ``set_for(height)`` is the validator set that votes on block ``height``.
    """
    if vc.stable_height < 0:
        return "negative stable height"
    if vc.stable_height > 0:
        agree: set[bytes] = set()
        validators = set_for(vc.stable_height)
        members = set(validators.public_keys())
        first = vc.checkpoint_proof[0] if vc.checkpoint_proof else None
        for cp in vc.checkpoint_proof:
            if first is None or (cp.height, cp.state_root, cp.digest) != (
                    vc.stable_height, first.state_root, first.digest):
                return "checkpoint proof does not agree on one checkpoint"
            if cp.sender not in members or cp.sender in agree:
                return "checkpoint proof has a non-member or repeated signer"
            if not verify(cp.sender, PURPOSE, signing_bytes(cp), cp.sig):
                return "a checkpoint signature does not verify"
            agree.add(cp.sender)
        if len(agree) < validators.quorum:
            return "checkpoint proof has fewer than a quorum of signers"
    if vc.last_cert is not None:
        if vc.last_cert.height < vc.stable_height:
            return "last certificate is below the stable checkpoint"
        why = check_commit_cert(vc.last_cert, chain_id, set_for(vc.last_cert.height), verify)
        if why:
            return why
    if len(vc.prepared) > PREPARED_MAX:
        return f"more than {PREPARED_MAX} prepared certificates"
    for i, cert in enumerate(vc.prepared):
        height = cert.pre_prepare.height
        if height != executed_height(vc) + 1 + i:
            return ("prepared certificates are not for consecutive heights after the last "
                    "committed one")
        why = check_prepared_cert(cert, set_for(height), verify, digest_of, vc.new_view,
                                  body_ok)
        if why:
            return why
    return None
