"""The Redis read model of scores and the projector that keeps it up to date from Kafka."""
