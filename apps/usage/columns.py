"""Column names of the fact table, in one place and importable without Django (the benchmark uses them)."""

# Token kinds, kept apart so that pricing is a dot product; reasoning is a part of output.
TOKEN_COLUMNS = (
    "input_uncached_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)

# The columns the pipeline writes for every fact row, in this order.
FACT_COLUMNS = (
    "source_id",
    "ts",
    "record_key",
    "organisation_id",
    "day",
    "grain",
    "run_id",
    "provider_id",
    "model_id",
    "team_id",
    "person_id",
    "task_id",
    "raw_identity_id",
    *TOKEN_COLUMNS,
    "requests",
    "failed",
    "batch",
    "cost_nanos",
    "reported_cost_nanos",
    "price_ref_id",
)
