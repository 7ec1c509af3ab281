"""``python -m finbatch``: the command line."""

import sys

from finbatch.cli import main

sys.exit(main())
