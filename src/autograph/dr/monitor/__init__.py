"""Watching the DR system: alert rules (monitor), the composite DR status, and the Prometheus
collector that renders that status for ``/metrics``."""
