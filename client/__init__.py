"""govledger Python SDK and command-line tool."""
