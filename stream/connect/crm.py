"""The CRM destinations by kind, for `leadstream connect hubspot|salesforce|mautic`.

Each kind adds its options to a command's parser (`add_arguments(parser)`) and builds its
destination from the parsed options and the settings (`from_options(args, settings)`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

from stream.connect import hubspot, mautic, salesforce
from stream.connect.destination import Destination
from stream.settings import Settings

__all__ = ["CRM_KINDS", "CrmKind"]


class CrmKind(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    from_options: Callable[[argparse.Namespace, Settings], Destination]


CRM_KINDS: dict[str, CrmKind] = {
    "hubspot": CrmKind(
        "upsert HubSpot contacts: lifecycle stage, lead status and score properties",
        hubspot.add_arguments,
        hubspot.from_options,
    ),
    "salesforce": CrmKind(
        "upsert Salesforce Leads by an External ID: Status and score fields",
        salesforce.add_arguments,
        salesforce.from_options,
    ),
    "mautic": CrmKind(
        "put Mautic contacts in a segment per stage (for nurture campaigns)",
        mautic.add_arguments,
        mautic.from_options,
    ),
}
"""Kind → how to parse its options and build its destination."""
