"""``python -m checkpoints list|show|validate PATH [--json]``: see :mod:`checkpoints.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
