"""Pure domain logic: events, ids and folds. Imports no Kafka, Postgres, Redis, Temporal or HTTP."""
