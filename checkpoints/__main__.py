"""``python -m streamlet.checkpoints list|show|validate PATH [--json]``: see
:mod:`streamlet.checkpoints.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
