"""Creator royalties: contracts, the statement engine and payout batches (no Dagster here)."""
