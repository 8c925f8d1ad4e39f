"""The Leadstream event contract: models of every message on every topic.

Importable by producers and consumers without Faust or a Kafka client.
"""
