"""Kafka in and out: the event contract on the wire, topics, producers, stream processors."""
