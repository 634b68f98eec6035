"""The local stack: Kafka, Postgres, Redis and Temporal on loopback, without Docker.

``infra.stack`` is the API (``up``, ``down``, ``status``, ``kill``), ``infra.cli`` the
``omnihub stack`` commands, ``infra.backing`` the four servers, ``infra.platform`` the
hook where OmniHub's own processes are registered.
"""
