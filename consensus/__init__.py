"""govledger consensus package."""
