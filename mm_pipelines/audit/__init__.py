"""The platform's one audit trail: a hash-chained Postgres table every domain appends to in its own transaction."""
