"""The command-line option every CRM kind shares: `--mapping`."""

from __future__ import annotations

import argparse
from pathlib import Path

from stream.connect.mapping import ConnectMapping, load_mapping
from stream.settings import Settings

__all__ = ["add_common_arguments", "mapping_from"]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """`--mapping FILE`."""
    parser.add_argument(
        "--mapping",
        type=Path,
        default=None,
        metavar="FILE",
        help="mapping file (YAML) of stages and scores to the CRM's fields "
        "(default: LEADSTREAM_CONNECT_MAPPING_FILE, else the built-in defaults)",
    )


def mapping_from(args: argparse.Namespace, settings: Settings) -> ConnectMapping:
    """The mapping `--mapping` or the settings name, else the defaults."""
    return load_mapping(getattr(args, "mapping", None) or settings.connect_mapping_file)
