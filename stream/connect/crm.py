"""The CRM kinds of `leadstream connect`: hubspot, salesforce and mautic.

Each kind adds its options to its command's parser (`add_arguments`), shows `example` (the
arguments after `leadstream connect KIND`) at the end of `--help`, and names the function that
builds its destination from the parsed options and the settings (`build`, `module:function`,
imported only when the command runs, so `--help` loads no HTTP client). Credentials come from the
settings only, never from arguments, which would show in `ps`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = ["CRM_KINDS", "CrmKind"]


class CrmKind(NamedTuple):
    help: str
    example: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    build: str


def _mapping_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mapping",
        type=Path,
        default=None,
        metavar="FILE",
        help="mapping file (YAML) of stages and scores to the CRM's fields "
        "(default: LEADSTREAM_CONNECT_MAPPING_FILE, else the built-in defaults)",
    )


def _hubspot_arguments(parser: argparse.ArgumentParser) -> None:
    _mapping_argument(parser)
    parser.add_argument(
        "--api-url", default=None, help="HubSpot's API (default: LEADSTREAM_HUBSPOT_API_URL)"
    )


def _salesforce_arguments(parser: argparse.ArgumentParser) -> None:
    _mapping_argument(parser)
    parser.add_argument(
        "--login-url",
        default=None,
        help="where tokens are requested: your My Domain URL "
        "(default: LEADSTREAM_SALESFORCE_LOGIN_URL)",
    )


def _mautic_arguments(parser: argparse.ArgumentParser) -> None:
    _mapping_argument(parser)
    parser.add_argument(
        "--url", default=None, help="the Mautic instance (default: LEADSTREAM_MAUTIC_URL)"
    )


CRM_KINDS: dict[str, CrmKind] = {
    "hubspot": CrmKind(
        help="upsert HubSpot contacts: lifecycle stage, lead status and score properties "
        "(token: LEADSTREAM_HUBSPOT_ACCESS_TOKEN)",
        example="--mapping crm-mapping.yaml",
        add_arguments=_hubspot_arguments,
        build="stream.connect.hubspot:from_options",
    ),
    "salesforce": CrmKind(
        help="upsert Salesforce Leads by an External ID: Status and score fields "
        "(LEADSTREAM_SALESFORCE_CLIENT_ID and _CLIENT_SECRET, or _USERNAME and _PRIVATE_KEY_FILE)",
        example="--login-url https://acme.my.salesforce.com --mapping crm-mapping.yaml",
        add_arguments=_salesforce_arguments,
        build="stream.connect.salesforce:from_options",
    ),
    "mautic": CrmKind(
        help="put Mautic contacts in a segment per stage, for nurture campaigns "
        "(LEADSTREAM_MAUTIC_USERNAME and _PASSWORD, or _CLIENT_ID and _CLIENT_SECRET)",
        example="--url https://mautic.example.com --mapping crm-mapping.yaml",
        add_arguments=_mautic_arguments,
        build="stream.connect.mautic:from_options",
    ),
}
"""Kind → its help line, example, options and destination builder."""
