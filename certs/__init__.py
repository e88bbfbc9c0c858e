"""govledger certs package."""
