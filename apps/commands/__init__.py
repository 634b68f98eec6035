"""The operators' commands of the ``omnihub`` CLI, one module per area."""
