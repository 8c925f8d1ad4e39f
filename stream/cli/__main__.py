"""`python -m stream.cli`: the `leadstream` command."""

import sys

from stream.cli import main

sys.exit(main())
