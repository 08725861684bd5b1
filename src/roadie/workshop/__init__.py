"""Workshop (`orchestra.io/v1`): RStudio sessions with storage, a URL, credentials and an expiry."""
