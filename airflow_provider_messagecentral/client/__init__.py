"""The hook's parts: connection settings (and where reports live), tokens, rate limit, retries, requests."""
