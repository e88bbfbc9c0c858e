"""govledger ledger layer: crypto, codec, Merkle proofs, state, blocks, storage, execution."""


def software_version() -> str:
    """This installation's govledger version (``pyproject.toml``'s, as installed), or
    ``"unknown"`` for a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("govledger")
    except PackageNotFoundError:
        return "unknown"
