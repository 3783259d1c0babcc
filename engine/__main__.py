"""``python -m streamlet``: the ``streamlet`` command (see :mod:`streamlet.cli.main`)."""

import sys

from streamlet.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
