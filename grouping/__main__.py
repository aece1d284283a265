"""``python -m grouping``: the ``grouping`` command (so ``torchrun -m grouping ...`` works)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
