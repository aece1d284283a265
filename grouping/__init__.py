"""grouping: efficient masked image modeling on hierarchical vision transformers.

The core (``grouping.core``, numpy + numba) holds masking, mask-unit layout, window counts and
the window-grouping solver; ``grouping.adapter`` turns plans into torch tensors and runs grouped
window attention; ``grouping.models`` holds Swin (GreenMIM), Hiera and HiP with MAE heads;
``grouping.testing`` exports Hypothesis strategies and reference implementations.
"""

from .core import *  # noqa: F403
from .core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = [*_core_all, "__version__"]
