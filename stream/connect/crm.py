"""The CRM destinations by kind, for `leadstream connect hubspot|salesforce|mautic`.

Each kind adds its options to its command's parser (`add_arguments(parser)`), shows `example`
(the arguments after `leadstream connect KIND`) at the end of `--help`, and builds its
destination from the parsed options and the settings (`build`, a `module:function` taking
`(args, settings)`); credentials come from the settings only, never from arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

from stream.connect import hubspot, mautic, salesforce

__all__ = ["CRM_KINDS", "CrmKind"]


class CrmKind(NamedTuple):
    help: str
    example: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    build: str


CRM_KINDS: dict[str, CrmKind] = {
    "hubspot": CrmKind(
        help="upsert HubSpot contacts: lifecycle stage, lead status and score properties",
        example=hubspot.EXAMPLE,
        add_arguments=hubspot.add_arguments,
        build="stream.connect.hubspot:from_options",
    ),
    "salesforce": CrmKind(
        help="upsert Salesforce Leads by an External ID: Status and score fields",
        example=salesforce.EXAMPLE,
        add_arguments=salesforce.add_arguments,
        build="stream.connect.salesforce:from_options",
    ),
    "mautic": CrmKind(
        help="put Mautic contacts in a segment per stage, for nurture campaigns",
        example=mautic.EXAMPLE,
        add_arguments=mautic.add_arguments,
        build="stream.connect.mautic:from_options",
    ),
}
"""Kind → its help line, example, options and destination builder."""
