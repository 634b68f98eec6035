"""Temporal workflows and activities: each run is a saga that consumes and emits events."""
