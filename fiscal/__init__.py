"""govledger fiscal package."""
