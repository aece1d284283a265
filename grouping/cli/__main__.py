"""``python -m grouping.cli``: the ``grouping`` command (as ``python -m grouping``)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
