"""The SQL that only DuckDB understands, in one place and named, so another engine is a new dialect."""
