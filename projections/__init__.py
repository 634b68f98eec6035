"""Read models: the event log folded into Postgres and Redis, rebuildable from the log."""
