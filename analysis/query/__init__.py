"""The one query layer: every figure Wardwatch's dashboard shows, defined once as SQL over a source.

A figure (counts, shares within T, percentiles with their n, Apdex, step and phase sums,
time-of-day cells, timelines, site comparisons, the board) is a query over rows of one shape
(:mod:`analysis.query.sources`): the store's exact rows, or the pre-aggregates
(:mod:`analysis.query.preagg`), which are those rows grouped per closed 15-minute bucket, kept on
disk and maintained as data arrives. :mod:`analysis.query.figures` answers a window from both:
pre-aggregated buckets where the window holds them whole, exact rows elsewhere. Counts are the
same either way; percentiles are ``quantile_cont``'s on exact rows and within 1% on
pre-aggregated ones. SQL that only DuckDB understands lives in :mod:`analysis.query.dialect`, so
a second engine is another dialect, not another implementation.
"""
