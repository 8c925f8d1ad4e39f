"""One frozen settings object, read from ``LEADSTREAM_*`` environment variables at the edge.

Build it once (``Settings()``) in the command line or a test and pass it down; nothing else
reads the environment.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ProcessingGuarantee = Literal["at_least_once", "exactly_once"]
ReplayStore = Literal["redis", "memory"]
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


class Settings(BaseSettings):
    """Everything a Leadstream worker can be told. Env var = ``LEADSTREAM_`` + field name."""

    model_config = SettingsConfigDict(env_prefix="LEADSTREAM_", frozen=True, extra="ignore")

    app_id: str = Field("leadstream", description="Faust app id: consumer group and table prefix.")
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL of the read model."
    )
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (isolates environments and tests)."
    )
    topic_partitions: int = Field(8, ge=1, description="Partitions of Leadstream's topics.")
    topic_replication: int = Field(
        1,
        ge=1,
        description="Replication factor of created topics (3 or more also sets their "
        "min.insync.replicas to 2).",
    )
    producer_idempotence: bool = Field(
        True,
        description=(
            "The worker's Kafka producer is idempotent (acks=all, enable.idempotence): a send"
            " the client retries after a lost answer is not written twice."
        ),
    )
    store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="Table store: RocksDB on disk (production) or memory (tests)."
    )
    data_dir: Path = Field(
        Path("leadstream-data"), description="Directory of the worker's RocksDB tables."
    )
    rocksdb_write_buffer_mb: int = Field(
        8,
        ge=1,
        description=(
            "RocksDB memtable size of each table partition's store, in MiB (at most two are held"
            " before a flush): bounds the worker's write memory."
        ),
    )
    rocksdb_block_cache_mb: int = Field(
        16,
        ge=1,
        description="RocksDB read cache of each table partition's store, in MiB.",
    )
    rocksdb_compression: Literal["zstd", "lz4", "snappy", "none"] = Field(
        "zstd",
        description=(
            "Block compression of the RocksDB stores: zstd keeps lead states in about two thirds"
            " of the bytes of RocksDB's default, snappy."
        ),
    )
    rocksdb_dict_kb: int = Field(
        16,
        ge=0,
        le=1024,
        description=(
            "Compression dictionary of each SST file of the RocksDB stores, in KiB, sampled from"
            " the file's data (zstd, lz4; 0: none): lead states share most of their bytes, which"
            " a dictionary gives every block."
        ),
    )
    rocksdb_dict_train_kb: int = Field(
        0,
        ge=0,
        le=65536,
        description=(
            "Data zstd's dictionary trainer reads per SST file to build the dictionary, in KiB"
            " (0: the samples are the dictionary): a smaller store for more CPU at every flush"
            " and compaction."
        ),
    )
    rocksdb_block_kb: int = Field(
        4,
        ge=1,
        le=1024,
        description=(
            "Data block size of the RocksDB stores, in KiB: larger blocks compress better, and"
            " a lookup missing the read cache reads and decompresses a whole block."
        ),
    )
    processing_guarantee: ProcessingGuarantee = "at_least_once"
    standby_replicas: int = Field(0, ge=0, description="Standby replicas of each table.")
    session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        description=(
            "How long the group waits for a silent worker (crashed, cut off) before its partitions"
            " move, in seconds (the Kafka consumer session timeout)."
        ),
    )
    timer_interval_s: float = Field(
        1.0, gt=0, description="How often the decay timer looks for due leads, in seconds."
    )
    batch_max: int = Field(
        500,
        ge=1,
        description="Most records the worker takes into one batch (one state write per lead "
        "per batch).",
    )
    batch_within_s: float = Field(
        0.01,
        gt=0,
        description="Longest wait, in seconds, for a batch to fill before the worker handles "
        "what it has (the latency a quiet stream pays).",
    )
    consumer_fetch_mb: int = Field(
        16,
        ge=1,
        le=256,
        description="Most data, in MiB, the worker's consumer takes from one partition per fetch "
        "(larger fetches restore a table's changelog faster; a fetch holds at most 50 MiB).",
    )
    bulk_restore: bool = Field(
        True,
        description="Restore the worker's table partitions from their changelogs in bulk "
        "(large fetches, RocksDB write batches) before Faust's own per-record recovery, which "
        "then reads only what is left (RELIABILITY.md, Faust guards).",
    )
    consumer_fetch_wait_ms: int = Field(
        10,
        ge=1,
        le=1500,
        description="Longest time, in ms, the broker holds a fetch to gather "
        "LEADSTREAM_CONSUMER_FETCH_MIN_KB (a steady stream then reaches the worker in fewer, "
        "larger fetches; an idle worker fetches this often).",
    )
    consumer_idle_wait_ms: int = Field(
        100,
        ge=0,
        le=1500,
        description="After a fetch that brought no records, the next one waits for the first "
        "record or this long, in ms (an idle worker fetches this often, and hears of a record "
        "at once); at or below LEADSTREAM_CONSUMER_FETCH_WAIT_MS every fetch batches.",
    )
    consumer_fetch_min_kb: int = Field(
        64,
        ge=0,
        le=16 * 1024,
        description="Data, in KiB, a fetch waits for (at most LEADSTREAM_CONSUMER_FETCH_WAIT_MS) "
        "before the broker answers; 0 answers as soon as any record is there.",
    )
    identity_max_events: int = Field(
        200, ge=1, description="Events held per anonymous id until an identify links it."
    )
    identity_max_age_s: float = Field(
        30 * 86400.0, gt=0, description="How long anonymous activity is held, in seconds."
    )
    models_path: Path | None = Field(
        None, description="Scoring model file (YAML); the shipped default models when unset."
    )
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's web server.")
    web_enabled: bool = True
    advertised_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+(:\d+)?/?$",
        description="The URL other workers reach this worker's web server at (Faust's "
        "canonical_url): a GET /leads/{id} reaching a worker that does not own the lead is "
        "forwarded there. Default http://LEADSTREAM_WEB_HOST:LEADSTREAM_WEB_PORT, which is wrong "
        "when the server listens on 0.0.0.0 and several workers run.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    projector_enabled: bool = Field(
        True, description="Run the Redis projector (the read model) in this worker."
    )
    evaluation_max_outcomes: int = Field(
        20_000,
        ge=100,
        le=10_000_000,
        description="CRM outcomes the live model evaluation keeps per model (the oldest go first).",
    )
    accounts_enabled: bool = Field(
        True,
        description="Roll leads up to accounts (the model file's `accounts:` section): account "
        "scores and stages. Off: leads only, as if the section were absent.",
    )

    # HTTP collector (stream/web/collector.py): the pixel, the Segment API and vendor webhooks.
    collector_enabled: bool = Field(True, description="Serve the collector endpoints.")
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens accepted by the collector's write endpoints, comma-separated.",
    )
    auth_disabled: bool = Field(
        False, description="Accept unauthenticated collector writes (development only)."
    )
    collector_max_call_bytes: int = Field(
        64 * 1024, ge=1, description="Largest body of a single Segment call."
    )
    collector_max_webhook_bytes: int = Field(
        1024 * 1024, ge=1, description="Largest body of a webhook or a Segment batch."
    )
    collector_cookie_domain: str | None = Field(
        None, description="Domain attribute of the anonymous-id cookie (e.g. .example.com)."
    )
    sendgrid_public_key: SecretStr | None = Field(
        None, description="SendGrid signed event webhook verification key (base64 DER or PEM)."
    )
    mailgun_signing_key: SecretStr | None = Field(
        None, description="Mailgun HTTP webhook signing key."
    )
    mailchimp_webhook_key: SecretStr | None = Field(
        None, description="The secret path segment of the Mailchimp webhook URL."
    )
    # Email-platform webhooks: Postmark, Amazon SES through SNS, Brevo, Mailjet.
    postmark_webhook_user: str = Field(
        "postmark", description="User name of the Postmark webhook URL's Basic credentials."
    )
    postmark_webhook_password: SecretStr | None = Field(
        None, description="Password of the Postmark webhook URL's Basic credentials."
    )
    ses_sns_topic_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "ARNs of the SNS topics SES publishes to, comma-separated: messages of other topics "
            "are refused, and only these topics' subscriptions are confirmed."
        ),
    )
    brevo_webhook_user: str = Field(
        "brevo", description="User name of the Brevo webhook URL's Basic credentials."
    )
    brevo_webhook_password: SecretStr | None = Field(
        None,
        description="Password of the Brevo webhook URL's Basic credentials (or its bearer token).",
    )
    mailjet_webhook_user: str = Field(
        "mailjet", description="User name of the Mailjet event URL's Basic credentials."
    )
    mailjet_webhook_password: SecretStr | None = Field(
        None, description="Password of the Mailjet event URL's Basic credentials."
    )
    # Customer.io, RudderStack, LinkedIn Lead Gen Forms and Meta Lead Ads webhooks.
    customerio_signing_key: SecretStr | None = Field(
        None, description="Customer.io reporting webhook signing key (X-CIO-Signature)."
    )
    rudderstack_token: SecretStr | None = Field(
        None,
        description="The token RudderStack sends to /webhooks/rudderstack (Authorization: Bearer, "
        "or Basic with the token as user name).",
    )
    linkedin_client_secret: SecretStr | None = Field(
        None,
        description="The LinkedIn application's client secret: answers LinkedIn's URL validation "
        "and checks X-LI-Signature.",
    )
    linkedin_access_token: SecretStr | None = Field(
        None,
        description="A LinkedIn access token with r_marketing_leadgen_automation: reads the leads "
        "the notifications name.",
    )
    linkedin_api_url: str = Field(
        "https://api.linkedin.com/rest",
        pattern=r"^https?://\S+$",
        description="Base URL of LinkedIn's versioned API (leadFormResponses, leadForms).",
    )
    linkedin_api_version: str = Field(
        "202601",
        pattern=r"^\d{6}$",
        description="The LinkedIn-Version (YYYYMM) of the lead reads; LinkedIn retires versions "
        "after about a year.",
    )
    meta_app_secret: SecretStr | None = Field(
        None, description="The Meta app's secret: checks X-Hub-Signature-256 of Lead Ads webhooks."
    )
    meta_verify_token: SecretStr | None = Field(
        None, description="The Verify Token of the Meta app's Page webhook subscription."
    )
    meta_access_token: SecretStr | None = Field(
        None,
        description="A Page (or system user) access token with leads_retrieval: reads the leads "
        "the notifications name.",
    )
    meta_graph_url: str = Field(
        "https://graph.facebook.com",
        pattern=r"^https?://\S+$",
        description="Base URL of Meta's Graph API.",
    )
    meta_graph_version: str = Field(
        "v25.0", pattern=r"^v\d+\.\d+$", description="The Graph API version of the lead reads."
    )
    lead_api_timeout_seconds: float = Field(
        2.5,
        gt=0,
        le=60,
        description="Longest wait for LinkedIn's or Meta's API to answer a lead read (LinkedIn "
        "wants its notifications answered within 3 seconds).",
    )
    webhook_tolerance_seconds: int = Field(
        300, ge=1, description="Largest age (either way) of a signed webhook timestamp."
    )
    machine_ip_ranges: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "More mail-security scanner address ranges, comma-separated CIDR blocks, each "
            "optionally `owner=CIDR`: opens and clicks from them are machine-made."
        ),
    )
    webhook_replay_store: ReplayStore = Field(
        "redis", description="Where seen Mailgun tokens are kept: redis (shared) or memory."
    )

    # CRM destinations of `leadstream connect hubspot|salesforce|mautic` (stream/connect/).
    connect_mapping_file: Path | None = Field(
        None,
        description="The mapping file (YAML) from models and stages to each CRM's fields and "
        "values; none: the defaults (README, Connecting your CRM).",
    )
    hubspot_access_token: SecretStr | None = Field(
        None,
        description="The HubSpot private app's access token (scope crm.objects.contacts.write).",
    )
    hubspot_api_url: str = Field(
        "https://api.hubapi.com", pattern=r"^https?://\S+$", description="HubSpot's API base URL."
    )
    salesforce_login_url: str = Field(
        "https://login.salesforce.com",
        pattern=r"^https?://\S+$",
        description="Where Salesforce tokens are requested: your My Domain URL for the client "
        "credentials flow (https://<domain>.my.salesforce.com).",
    )
    salesforce_client_id: str | None = Field(
        None, description="The consumer key of the Salesforce connected app."
    )
    salesforce_client_secret: SecretStr | None = Field(
        None, description="The consumer secret (OAuth 2.0 client credentials flow)."
    )
    salesforce_username: str | None = Field(
        None, description="The user the JWT bearer flow acts as (with salesforce_private_key_file)."
    )
    salesforce_private_key_file: Path | None = Field(
        None, description="PEM RSA private key whose certificate the connected app holds (JWT)."
    )
    salesforce_api_version: str = Field(
        "v62.0", pattern=r"^v\d+\.\d$", description="Salesforce REST API version."
    )
    mautic_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="The Mautic instance (https://mautic.example.com).",
    )
    mautic_username: str | None = Field(None, description="Mautic user (HTTP Basic auth).")
    mautic_password: SecretStr | None = Field(None, description="Mautic user's password.")
    mautic_client_id: str | None = Field(
        None, description="Mautic API credentials' public key (OAuth 2.0 client credentials)."
    )
    mautic_client_secret: SecretStr | None = Field(
        None, description="Mautic API credentials' secret key."
    )

    # Tracked links (stream/web/links.py): the collector's GET /r/{token} redirect and
    # GET /o/{token}.gif email open pixel, and the client address their machine check reads.
    link_signing_key: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "Keys of the tracked links' HMAC-SHA256 signatures, comma-separated (or a JSON list):"
            " the first signs, every one verifies (add the new key first to rotate). At least"
            " 32 characters each. None: /r/ and /o/ answer 404."
        ),
    )
    link_base_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+(/\S*)?$",
        description="Where people reach the collector (https://collect.example.com): the base "
        "of the tracked links `leadstream links sign` prints.",
    )
    collector_trust_forwarded_for: bool = Field(
        False,
        description="The web server is behind a proxy that sets X-Forwarded-For: the client "
        "address of the machine check is its first entry, not the connection's peer.",
    )

    # Connectors (`leadstream connect KIND`, stream/connect/core.py).
    connect_accounts: bool = Field(
        False,
        description="Connectors deliver account stage changes (leads.account-stage-changes.v1) "
        "too, as `connect KIND --accounts` does: the webhook, HubSpot and Salesforce kinds.",
    )
    connect_group_id: str | None = Field(
        None,
        description="Consumer group of a connector; default {app_id}-connect-{kind}, so each kind "
        "reads every stage change at its own pace.",
    )
    connect_max_in_flight: int = Field(
        1000,
        ge=1,
        description="Stage changes a connector holds read but not yet delivered or dead-lettered; "
        "at this many it pauses its partitions (memory stays flat while a receiver is down).",
    )
    connect_concurrency: int = Field(
        16, ge=1, le=1024, description="Destination calls a connector makes at once (across leads)."
    )
    connect_max_attempts: int = Field(
        100,
        ge=1,
        description="Calls for one change before it goes to the dead letters (with the default "
        "backoff the time limit, LEADSTREAM_CONNECT_MAX_RETRY_S, comes first).",
    )
    connect_max_retry_s: float = Field(
        3600.0,
        gt=0,
        description="Longest time, in seconds, a change is retried before it goes to the dead "
        "letters.",
    )
    connect_backoff_initial_s: float = Field(
        0.5, gt=0, description="Cap of the first retry's random wait, in seconds (it doubles)."
    )
    connect_backoff_max_s: float = Field(
        60.0, gt=0, description="Largest cap of a retry's random wait, in seconds."
    )
    connect_rate_per_s: float | None = Field(
        None, gt=0, description="Requests per second to the destination (default: the kind's)."
    )
    connect_burst: int | None = Field(
        None, ge=1, description="Requests that may go at once before the rate applies."
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Longest wait for a destination's answer, in seconds."
    )
    connect_commit_interval_s: float = Field(
        1.0, gt=0, description="How often a connector commits what it has done, in seconds."
    )
    connect_metrics_host: str = Field(
        "127.0.0.1", description="Address of the connector's /metrics server."
    )
    connect_metrics_port: int = Field(
        9466, ge=0, le=65535, description="Port of the connector's /metrics server (0: none)."
    )
    connect_webhook_secret: SecretStr | None = Field(
        None,
        description="Signing secret (whsec_<base64>) of `leadstream connect webhook --url` when "
        "--secret is not given.",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("at least one host:port is required")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @field_validator("machine_ip_ranges", mode="before")
    @classmethod
    def _split_ranges(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("machine_ip_ranges")
    @classmethod
    def _check_ranges(cls, value: list[str]) -> list[str]:
        for item in value:
            cidr = item.rpartition("=")[2].strip()
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a CIDR block (e.g. 203.0.113.0/24)") from None
        return value

    @field_validator("ses_sns_topic_arns", mode="before")
    @classmethod
    def _split_topic_arns(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("ses_sns_topic_arns")
    @classmethod
    def _check_topic_arns(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _SNS_TOPIC_ARN.fullmatch(item):
                raise ValueError(
                    f"{item!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)"
                )
        return value

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):  # a JSON list is accepted too
                return json.loads(value)
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("link_signing_key", mode="before")
    @classmethod
    def _split_link_keys(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):  # a JSON list is accepted too
                return json.loads(value)
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def broker_url(self) -> str:
        """The bootstrap servers in Faust's URL form."""
        return ";".join(f"kafka://{server}" for server in self.kafka_bootstrap.split(","))

    def topic(self, name: str) -> str:
        """The full name of a Leadstream topic in this environment."""
        return f"{self.topic_prefix}{name}"

    def durability_configs(self) -> dict[str, str]:
        """Topic configs every created topic gets for its replication: with three replicas or
        more, a write the producer sees acknowledged (acks=all, Faust's default) is on at least
        two brokers, so losing any one loses nothing (``min.insync.replicas=2``)."""
        return {"min.insync.replicas": "2"} if self.topic_replication >= 3 else {}
