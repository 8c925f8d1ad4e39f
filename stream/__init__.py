"""Leadstream: real-time lead scoring on Kafka.

The stream processor around the pure scoring core: the Faust app factory, topics, tables,
agents, settings and the command line.
"""

from stream import native as _native  # noqa: F401 - chooses the core's build before its import

__version__ = "0.1.0"
