"""Prometheus scrape config, alert rules and the Grafana dashboard (see METRICS.md)."""
