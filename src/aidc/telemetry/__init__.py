"""Telemetry: collectors, Prometheus exposition, the embedded time-series buffer, alert rules and notifiers."""
