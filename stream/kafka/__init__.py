"""Kafka plumbing: the topics Leadstream reads and writes, creating them, and client helpers."""
