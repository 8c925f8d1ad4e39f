"""Leadstream: real-time lead scoring on Kafka.

The stream processor around the pure scoring core: the Faust app factory, topics, tables,
agents, settings and the command line.
"""

__version__ = "0.1.0"
