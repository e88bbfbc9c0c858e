"""govledger ledger layer: crypto suites, codec, Merkle proofs, state, blocks, storage, execution."""
