"""The container's ENTRYPOINT and the ``finbatch`` script: a shim over :mod:`finbatch.cli`."""

from __future__ import annotations

import sys

from finbatch.cli import main

if __name__ == "__main__":
    sys.exit(main())
