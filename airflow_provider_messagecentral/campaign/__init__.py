"""One campaign's sending: the exactly-once ledger, the send plan the operators share, progress logging."""
