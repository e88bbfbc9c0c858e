"""govledger ledger layer: crypto, codec, Merkle proofs, state, blocks, storage, execution."""
