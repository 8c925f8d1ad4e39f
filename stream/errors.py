"""The one exception root of Leadstream."""


class LeadstreamError(Exception):
    """Base class of every error Leadstream raises on purpose."""


class ConfigurationError(LeadstreamError):
    """Settings or files that cannot work (bad values, missing files)."""


class InfrastructureError(LeadstreamError):
    """Kafka or Redis cannot be reached or started."""
