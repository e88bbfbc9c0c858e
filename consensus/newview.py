"""Pure view-change calculations: validating VIEW-CHANGEs and choosing NEW-VIEW's content.

:func:`select` is a pure function of a *set* of VIEW-CHANGE messages (the
order they arrived in cannot change its result — a property test checks
this). Every backup recomputes it from the VIEW-CHANGEs carried in a
NEW-VIEW and rejects the NEW-VIEW if the primary's choice differs.

Rule (PBFT's, for one block in flight): ``committed`` is the highest height
any VIEW-CHANGE proves final with a commit certificate; blocks up to it are
fetched by state transfer, never re-voted. At ``committed + 1`` the new view
must re-propose the block of the prepared certificate with the highest view,
if any VIEW-CHANGE carries one there; with none, the new primary is free to
propose a fresh block. Ties in view (impossible with at most f faulty
replicas) break on the digest so the result stays deterministic.
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
    reproposal: PrePrepare | None  # the pre-prepare to re-propose at committed + 1
    digest: bytes | None


def executed_height(vc: ViewChange) -> int:
    return vc.last_cert.height if vc.last_cert is not None else 0


def select(view_changes: Iterable[ViewChange], digest_of: Callable[[Block], bytes]) -> Selection:
    vcs = list(view_changes)
    assert vcs, "select needs at least one VIEW-CHANGE"
    min_stable = max(vc.stable_height for vc in vcs)
    committed = max(executed_height(vc) for vc in vcs)
    best: tuple[int, bytes, bytes, PrePrepare] | None = None
    for vc in vcs:
        p = vc.prepared
        if p is None or p.pre_prepare.height != committed + 1:
            continue
        # Highest view wins; the digest and then the whole encoded pre-prepare break ties,
        # so the result never depends on the order the VIEW-CHANGEs arrived in.
        pp = p.pre_prepare
        candidate = (pp.view, digest_of(pp.block), encode(pp), pp)
        if best is None or candidate[:3] > best[:3]:
            best = candidate
    if best is None:
        return Selection(min_stable, committed, None, None)
    return Selection(min_stable, committed, best[3], best[1])


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
    message = commit_message(chain_id, cert.height, cert.block_hash)
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
    if vc.prepared is not None:
        if vc.prepared.pre_prepare.height != executed_height(vc) + 1:
            return "prepared certificate is not for the height after the last committed one"
        why = check_prepared_cert(vc.prepared, set_for(vc.prepared.pre_prepare.height), verify,
                                  digest_of, vc.new_view, body_ok)
        if why:
            return why
    return None
