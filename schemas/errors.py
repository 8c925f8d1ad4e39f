"""The one exception root of Leadstream.

It lives in the contract package so producers that import only `schemas` can catch every error
Leadstream raises on purpose; `stream.errors` re-exports it.
"""


class LeadstreamError(Exception):
    """Base class of every error Leadstream raises on purpose."""
