"""The public names of the store package, pinned."""

import store


def test_public_names() -> None:
    assert sorted(store.__all__) == sorted([
        "SPAN_ARROW_SCHEMA", "VIEWS", "CompactionReport", "Maintenance", "ParquetSpanExporter",
        "StoreConfig", "StoreError", "apply_retention", "check_store", "compact", "connect",
        "create_views", "drop_spans", "ImportIssue", "ImportReport", "import_otlp_jsonl", "import_server_timings", "init_store", "list_segments", "read_schema_version", "refresh", "remove_replaced",
        "rows_to_table", "schema", "span_to_row", "upgrade_store", "write_spans",
    ])
    for name in store.__all__:
        assert getattr(store, name) is not None
    assert store.VIEWS == ("spans", "runs", "steps", "requests", "missed_slots")
