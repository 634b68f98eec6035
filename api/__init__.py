"""HTTP: appends events and reads projections; never writes a projection."""
