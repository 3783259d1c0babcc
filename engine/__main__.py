"""``python -m engine``: the ``streamlet`` command (see :mod:`engine.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
