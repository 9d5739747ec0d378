"""Alerting: burn-rate and probe alerts evaluated over the store, kept durably, delivered.

``rules`` finds the conditions (every objective's and SLA's multi-window burn-rate alerts as
``analysis.alerts`` defines them, a site gone silent, every run of a workflow failing);
``exhaustion`` says when a budget runs out at the current rate; ``messages`` writes the service
owner's and the clinician's texts; ``state`` keeps what is pending, firing and resolved, and what
was sent to whom, in the data directory; ``delivery`` turns that into Alertmanager API v2 posts and
Alertmanager-format (version 4) webhooks, retried with backoff; ``engine`` runs one evaluation.

Imports ``analysis`` and ``store`` only; ``wardwatch`` wires it to the configuration.
"""
