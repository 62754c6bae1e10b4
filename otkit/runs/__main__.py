"""``python -m otkit.runs``: the batch runner's command line (see :mod:`otkit.runs.cli`)."""

import sys

from .cli import main

sys.exit(main())
