"""Storage: the SQLite connection and transactions, the schema, transaction building blocks."""
