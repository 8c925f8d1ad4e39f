"""The one exception root of Leadstream (defined in the contract package, re-exported here)."""

from schemas.errors import LeadstreamError

__all__ = ["ConfigurationError", "InfrastructureError", "LeadstreamError"]


class ConfigurationError(LeadstreamError):
    """Settings or files that cannot work (bad values, missing files)."""


class InfrastructureError(LeadstreamError):
    """Kafka or Redis cannot be reached or started."""
