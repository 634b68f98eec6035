"""Stream processors: faust agents that fold the log into the read models."""
