"""The one query layer: every figure Wardwatch reports, defined once as SQL over the store.

A figure (percentiles with their n, Apdex, SLA attainment per the contract's method, objectives,
burn rates, the findings' inputs) is a query over a *source*: the exact views of the store, or the
pre-aggregates, which are this layer's materialized form. SQL that only DuckDB understands lives in
:mod:`analysis.query.dialect`, so a second engine is another dialect, not another implementation.
"""
