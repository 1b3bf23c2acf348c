"""How the world talks to driftwise: HTTP, Kafka, metrics, settings, CLI."""
