"""Development infrastructure: the local Kafka and Redis, and the one-command demo."""
