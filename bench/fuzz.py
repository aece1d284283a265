"""Fuzz the public core API with Hypothesis: every call returns a result its checker accepts or
raises the library's ``GroupingValueError``; nothing else escapes, nothing runs past the bound.

Each *target* is one public function (or a checker applied to solved and to corrupted plans and
layouts). Per example, Hypothesis draws the arguments: most are valid, but any argument may be
swapped for a wrong one (wrong types and dtypes, negative, zero, huge or NaN values, empty
arrays, wrong ranks, arbitrary objects). Every call is classified:

* ``ok``: it returned and the target's checker accepted the result (masks have the MAE keep
  count, plans pass ``check_plan``, layouts pass ``check_group_layout``, permutations invert,
  the published algorithm matches the plain-Python reference on small inputs, ...);
* ``error``: it raised ``GroupingValueError`` (or a subclass: ``PlanError``,
  ``GroupLayoutError``). For the corrupted plans and layouts this is the expected outcome;
* ``escape``: any other exception (recorded with its type, message and a reproducing call);
* ``wrong``: it returned something the checker rejected (also recorded);
* ``slow``: the call (not its check) took longer than the bound (``--bound``, 2 s), whatever
  it returned.

Two guards keep one bad call from ending the run unrecorded (the first full run was killed by
the kernel's OOM killer after ``mask_unit_layout(num_stages=2**62)`` built grids for ever): a
watchdog (``--hang``, 60 s, ``SIGALRM``) interrupts a call or check that runs that long, which
is recorded as an escape of type ``Hung``; and the process's address space is limited
(``--memory-gib``, 8 GiB, ``RLIMIT_AS``, set after the warm-up) so that a runaway allocation is
a recorded ``MemoryError`` rather than a killed process. (A numba kernel cannot be
interrupted; the core bounds its kernels' work itself, see docs/core.md.)

A run passes when there are no escapes, no wrong results and no slow calls. Usage::

    flock /tmp/bench.lock python bench/fuzz.py              # ~10^5 calls -> docs/results/fuzz.json
    python bench/fuzz.py --quick --out /tmp/fuzz.json      # ~2,000 calls, a minute or less
    python bench/fuzz.py --calls 400 --targets solve,check_plan --out /tmp/f.json

Exit status 1 when the run did not pass. ``tests/test_fuzz_smoke.py`` runs a few hundred calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import random
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grouping as gp  # noqa: E402
from grouping.core.errors import GroupingValueError  # noqa: E402
from grouping.core.groups import GroupLayout  # noqa: E402
from grouping.core.plan import GroupingPlan  # noqa: E402
from grouping.testing.reference import (  # noqa: E402
    bfd_reference,
    ffd_reference,
    greenmim_reference,
)

REPO = Path(__file__).resolve().parent.parent
BOUND_S = 2.0  # default per-call wall-time bound (seconds)
HANG_S = 60.0  # a call or check still running after this long is interrupted (seconds)
MEMORY_GIB = 8.0  # address-space limit of the fuzzing process after the warm-up


class Hung(BaseException):  # noqa: N818 - recorded by name, next to MemoryError
    """Raised by the watchdog in a call (or check) that ran past ``--hang`` seconds; a
    BaseException, so that no ``except Exception`` in the code under test swallows it."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hung("interrupted by the watchdog")


# --- building blocks --------------------------------------------------------------------------


class Src:
    """A value together with the Python source that rebuilds it (for the escape report)."""

    def __init__(self, value: Any, source: str) -> None:
        self.value = value
        self.source = source


def source(value: Any) -> str:
    """Python source that rebuilds ``value`` (arrays in full up to 300 elements)."""
    if isinstance(value, Src):
        return value.source
    if isinstance(value, np.ndarray):
        if value.size <= 300 and value.dtype != object:
            return (
                f"np.array({value.tolist()!r}, dtype={str(value.dtype)!r}).reshape({value.shape})"
            )
        if value.dtype == object:
            return f"np.array({value.tolist()!r}, dtype=object)"
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, np.generic):
        return f"np.{type(value).__name__}({value.item()!r})"
    if isinstance(value, tuple):
        inner = ", ".join(source(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(source(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{source(k)}: {source(v)}" for k, v in value.items()) + "}"
    if type(value) is object:
        return "object()"
    text = repr(value)
    return text if len(text) <= 2000 else text[:2000] + "..."


def unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Src) else value


_OBJECT = object()

#: Wrong arguments of every kind, for any parameter.
JUNK: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, -(2**63), 2**31, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]),
    st.just(_OBJECT),
    st.lists(st.integers(-5, 5), max_size=3),
    st.lists(st.text(max_size=1), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=1), st.integers(0, 3), max_size=2),
    st.just(float("nan")),
    st.just(complex(1.0, 2.0)),
    st.sampled_from([np.float64("nan"), np.int64(-3), np.uint64(2**64 - 1), np.bool_(True)]),
    st.builds(lambda: np.array([1.5, 2.0])),
    st.builds(lambda: np.zeros((2, 0), dtype=np.int64)),
    st.builds(lambda: np.zeros((), dtype=np.int64)),
    st.builds(lambda: np.array(["a", "b"])),
    st.builds(lambda: np.array([[1, 2], [3, 4]], dtype=object)),
    st.builds(lambda: np.array([[True, False]], dtype=bool)),
    st.builds(lambda: [[1, 2], [3]]),  # ragged
)


def coin(draw: Callable[..., Any], p: float) -> bool:
    """True with probability ``p`` (Hypothesis favours small integers, so draw a seed)."""
    return random.Random(draw(st.integers(0, 2**32 - 1))).random() < p


def maybe(
    draw: Callable[..., Any],
    valid: st.SearchStrategy[Any],
    bad: float = 0.1,
    wrong: st.SearchStrategy[Any] | None = None,
) -> Any:
    """``valid`` most of the time, a wrong value (``wrong``, default ``JUNK``) with
    probability ``bad``."""
    return draw(JUNK if wrong is None else wrong) if coin(draw, bad) else draw(valid)


def ratios() -> st.SearchStrategy[Any]:
    """Mask ratios: mostly valid, some at or past the edges (1.0, negative, NaN, inf)."""
    valid = st.one_of(st.sampled_from([0.0, 0.4, 0.5, 0.6, 0.75, 0.9]), st.floats(0.0, 0.999))
    edges = st.sampled_from([1.0, -0.1, 1.5, float("nan"), float("inf"), np.float32(0.5), 3])

    @st.composite
    def draw_ratio(draw: Callable[..., Any]) -> Any:
        return maybe(draw, valid, 0.1, edges)

    return draw_ratio()


def rngs() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.integers(0, 2**32),
        st.integers(0, 2**32).map(
            lambda s: Src(np.random.default_rng(s), f"np.random.default_rng({s})")
        ),
        st.sampled_from([-1, 1.5, "seed", np.random.RandomState(0)]),
    )


def grids(max_ndim: int = 3, max_side: int = 24) -> st.SearchStrategy[tuple[int, ...]]:
    return st.integers(1, max_ndim).flatmap(lambda n: st.tuples(*([st.integers(1, max_side)] * n)))


def bad_grids() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(()),
        st.tuples(st.integers(-3, 0), st.integers(1, 4)),
        st.tuples(st.integers(10**5, 10**12), st.integers(10**5, 10**12)),
        st.lists(st.floats(allow_nan=True), min_size=1, max_size=3),
        st.integers(-2, 5),
        st.text(max_size=3),
    )


def bool_masks(max_ndim: int = 4, max_side: int = 8) -> st.SearchStrategy[np.ndarray]:
    shapes = hnp.array_shapes(min_dims=1, max_dims=max_ndim, min_side=0, max_side=max_side)
    return hnp.arrays(np.bool_, shapes)


def bad_masks() -> st.SearchStrategy[Any]:
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    return st.one_of(
        hnp.arrays(st.sampled_from([np.int8, np.int64, np.float64, np.uint8]), shapes),
        hnp.arrays(np.float64, shapes, elements=st.just(float("nan"))),
        st.builds(lambda: np.array([[True], [False, True]], dtype=object)),
        st.lists(st.booleans(), max_size=5),
        JUNK,
    )


COUNT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", ">i8")


@st.composite
def counts_arrays(draw: Callable[..., Any]) -> Any:
    """Counts per window: mostly valid, of every size class; sometimes wrong."""
    if coin(draw, 0.08):  # wrong: floats, NaN, negative, bool, ragged, junk
        return draw(
            st.one_of(
                hnp.arrays(np.float64, st.integers(0, 6), elements=st.floats(allow_nan=True)),
                st.lists(st.integers(-(2**64), 2**64), min_size=1, max_size=6),
                hnp.arrays(np.int64, st.integers(1, 6), elements=st.integers(-(2**63), -1)),
                hnp.arrays(np.bool_, st.integers(1, 6)),
                st.lists(st.integers(2**62, 2**63 - 1), min_size=2, max_size=5).map(
                    lambda v: np.array(v, dtype=np.int64)
                ),
                JUNK,
            )
        )
    n = draw(st.sampled_from([0, 1, 2, 3, 5, 8, 20, 50, 100, 200, 300, 1000, 3000]))
    hi = draw(st.sampled_from([1, 7, 49, 64, 100, 300, 1000, 4096, 5000, 10**6, 10**12, 10**17]))
    if n > 300 and hi > 4096:
        hi = draw(st.sampled_from([49, 300]))
    zero = draw(st.sampled_from([0.0, 0.0, 0.3, 0.9]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    style = draw(st.integers(0, 3))
    if style == 0:
        values = rng.integers(0, hi + 1, size=n)
    elif style == 1:  # few distinct sizes (cutting-stock-like)
        values = rng.choice(rng.integers(1, hi + 1, size=3), size=n)
    elif style == 2:  # sizes just above a third / half of hi (hard for heuristics)
        values = rng.integers(hi // 5 + 1, hi // 2 + 2, size=n)
    else:
        values = draw(st.lists(st.integers(0, hi), min_size=n, max_size=n))
        values = np.array(values, dtype=np.int64)
    values = np.where(rng.random(n) < zero, 0, values).astype(np.int64)
    dtype = draw(st.sampled_from(COUNT_DTYPES))
    if np.iinfo(np.dtype(dtype)).max < (values.max() if n else 0):
        dtype = "int64"
    array = values.astype(dtype)
    shape = draw(st.sampled_from(["flat", "list", "2-d", "readonly", "strided"]))
    if shape == "list":
        return array.tolist()
    if shape == "2-d" and n % 2 == 0 and n:
        return array.reshape(2, -1)
    if shape == "readonly":
        array.setflags(write=False)
    if shape == "strided" and n:
        return np.repeat(array, 2)[::2]
    return array


def _as_flat(counts: Any) -> np.ndarray | None:
    try:
        return np.asarray(counts).ravel()
    except Exception:
        return None


# --- the targets ------------------------------------------------------------------------------


class Case:
    """One drawn call: ``call()`` runs it, ``check(result)`` raises if the result is wrong."""

    def __init__(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fn: Callable[..., Any],
        check: Callable[[Any], None] | None = None,
        expect_error: bool = False,
    ) -> None:
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.fn = fn
        self.check = check
        self.expect_error = expect_error

    def call(self) -> Any:
        return self.fn(
            *(unwrap(a) for a in self.args), **{k: unwrap(v) for k, v in self.kwargs.items()}
        )

    def source(self) -> str:
        parts = [source(a) for a in self.args]
        parts += [f"{k}={source(v)}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"


def _keep(grid: tuple[int, ...], ratio: float) -> int:
    return int(math.prod(grid) * (1 - float(ratio)))


def t_keep_count(draw: Callable[..., Any]) -> Case:
    n = maybe(draw, st.integers(0, 10**9))
    r = maybe(draw, ratios())

    def check(k: Any) -> None:
        assert type(k) is int and 0 <= k <= n and k == int(n * (1 - float(r))), k

    return Case("gp.keep_count", (n, r), {}, gp.keep_count, check)


def t_batch_mask(draw: Callable[..., Any]) -> Case:
    grid = maybe(draw, grids(), 0.25, st.one_of(bad_grids(), JUNK))
    r = maybe(draw, ratios())
    rng = maybe(draw, rngs(), 0.05)

    def check(m: np.ndarray) -> None:
        assert m.dtype == np.bool_ and m.shape == tuple(grid), m.shape
        assert int(m.sum()) == _keep(grid, r)
        if isinstance(rng, int):
            assert np.array_equal(m, gp.batch_mask(grid, r, rng=rng))

    return Case("gp.batch_mask", (grid, r), {"rng": rng}, gp.batch_mask, check)


def t_sample_masks(draw: Callable[..., Any]) -> Case:
    batch = maybe(draw, st.integers(1, 6))
    grid = maybe(draw, grids(max_side=12), 0.2, bad_grids())
    r = maybe(draw, ratios())
    rng = maybe(draw, rngs(), 0.05)

    def check(m: np.ndarray) -> None:
        assert m.dtype == np.bool_ and m.shape == (batch, *grid), m.shape
        assert (m.reshape(batch, -1).sum(axis=1) == _keep(grid, r)).all()

    return Case("gp.sample_masks", (batch, grid, r), {"rng": rng}, gp.sample_masks, check)


def t_groupwise_masks(draw: Callable[..., Any]) -> Case:
    b = maybe(draw, st.integers(1, 5))
    g = maybe(draw, st.integers(1, 8), 0.15, st.one_of(JUNK, st.just(10**9)))
    n = maybe(draw, st.integers(1, 40), 0.15, st.one_of(JUNK, st.just(10**9)))
    r = maybe(draw, ratios())
    rng = maybe(draw, rngs(), 0.05)

    def check(m: np.ndarray) -> None:
        assert m.dtype == np.bool_ and m.shape == (b, g, n)
        assert (m.sum(axis=-1) == int(n * (1 - float(r)))).all()

    return Case("gp.groupwise_masks", (b, g, n, r), {"rng": rng}, gp.groupwise_masks, check)


def t_upsample_mask(draw: Callable[..., Any]) -> Case:
    mask = maybe(draw, bool_masks(), 0.2, bad_masks())
    ndim_ok = mask.ndim if isinstance(mask, np.ndarray) and mask.ndim else 1
    factor = maybe(
        draw,
        st.one_of(
            st.integers(1, 4),
            st.integers(1, ndim_ok).flatmap(lambda k: st.tuples(*([st.integers(1, 3)] * k))),
            st.just(10**6),
        ),
    )
    kwargs: dict[str, Any] = {}
    if draw(st.booleans()):
        kwargs["ndim"] = maybe(draw, st.integers(0, 5))

    def check(out: np.ndarray) -> None:
        m = np.asarray(mask)
        nd = kwargs.get("ndim")
        if nd is None:
            nd = len(factor) if isinstance(factor, (tuple, list)) else min(2, m.ndim)
        f = (factor,) * nd if isinstance(factor, int) else tuple(factor)
        ref = m
        for axis, k in zip(range(m.ndim - nd, m.ndim), f, strict=True):
            ref = np.repeat(ref, k, axis=axis)
        assert out.dtype == np.bool_ and np.array_equal(out, ref) and out.flags.c_contiguous

    return Case("gp.upsample_mask", (mask, factor), kwargs, gp.upsample_mask, check)


@st.composite
def window_args(draw: Callable[..., Any], batch: bool = True) -> tuple[Any, Any, Any, Any]:
    """(mask, window, shift, ndim): mostly consistent, sometimes not."""
    ndim = draw(st.integers(1, 3))
    grid = tuple(draw(st.integers(1, 14)) for _ in range(ndim))
    lead = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 1 if batch else 0))))
    mask = draw(hnp.arrays(np.bool_, lead + grid))
    window = tuple(draw(st.integers(1, g)) for g in grid)
    shift = tuple(draw(st.integers(0, w - 1)) for w in window)
    if draw(st.booleans()) and len(set(window)) == 1:
        window = window[0]
    if draw(st.booleans()) and isinstance(window, tuple) and len(set(shift)) == 1:
        shift = shift[0]
    explicit = ndim if not isinstance(window, tuple) else None
    if coin(draw, 0.1):  # an inconsistent window or shift
        window = draw(st.one_of(st.integers(-1, 30), st.tuples(st.integers(15, 20)), JUNK))
    if coin(draw, 0.1):
        shift = draw(st.one_of(st.integers(-2, 20), JUNK))
    if coin(draw, 0.1):
        mask = draw(bad_masks())
    if coin(draw, 0.0667):
        explicit = draw(st.one_of(st.integers(-1, 6), JUNK))
    return mask, window, shift, explicit


def _spatial_ndim(mask: np.ndarray, window: Any, ndim: Any) -> int:
    """The spatial axes the window functions use: ``ndim``, else one per window side, else the
    last two (or one) axes of the mask."""
    if ndim is not None:
        return ndim
    return len(window) if isinstance(window, tuple) else min(2, mask.ndim)


def _window_check(mask: Any, window: Any, shift: Any, ndim: Any) -> Callable[[np.ndarray], None]:
    def check(counts: np.ndarray) -> None:
        m = np.asarray(mask)
        nd = _spatial_ndim(m, window, ndim)
        grid = m.shape[m.ndim - nd :]
        lead = m.shape[: m.ndim - nd]
        wgrid = gp.window_grid(grid, window, shift=shift)
        assert counts.dtype == np.int64 and counts.shape == lead + wgrid
        axes = tuple(range(len(lead), counts.ndim))
        assert np.array_equal(counts.sum(axis=axes), m.sum(axis=tuple(range(len(lead), m.ndim))))
        sizes = gp.window_shape(grid, window, shift=shift)
        assert (counts >= 0).all() and (counts <= sizes).all()

    return check


def t_window_counts(draw: Callable[..., Any]) -> Case:
    mask, window, shift, ndim = draw(window_args())
    kwargs: dict[str, Any] = {"shift": shift}
    if ndim is not None:
        kwargs["ndim"] = ndim
    return Case(
        "gp.window_counts",
        (mask, window),
        kwargs,
        gp.window_counts,
        _window_check(mask, window, shift, ndim),
    )


def t_window_grid(draw: Callable[..., Any]) -> Case:
    grid = maybe(draw, grids(max_side=40), 0.2, bad_grids())
    sides = grid if isinstance(grid, tuple) and grid and all(type(g) is int for g in grid) else (4,)
    low = max(1, min(sides))
    window = maybe(
        draw, st.integers(1, low) | st.tuples(*[st.integers(1, max(1, g)) for g in sides])
    )
    if isinstance(window, tuple) and window:
        top = max(0, min(window) - 1)
    else:
        top = max(0, window - 1) if type(window) is int else 3
    shift = maybe(draw, st.integers(0, top) | st.tuples(*([st.integers(0, top)] * len(sides))))
    which = draw(st.sampled_from(["window_grid", "window_shape", "window_index"]))

    def check(out: Any) -> None:
        w = (window,) * len(grid) if isinstance(window, int) else window
        s = (shift,) * len(grid) if isinstance(shift, int) else shift
        # windows per axis: the distinct (i + o) // w for i < g, o = (w - s) % w < w
        expect = tuple(
            (g - 1 + (wi - si) % wi) // wi + 1 for g, wi, si in zip(grid, w, s, strict=True)
        )
        if max(grid) <= 1000:  # against the definition, by brute force
            brute = tuple(
                len(np.unique((np.arange(g) + (wi - si) % wi) // wi))
                for g, wi, si in zip(grid, w, s, strict=True)
            )
            assert brute == expect, (brute, expect)
        if which == "window_grid":
            assert out == expect
        elif which == "window_shape":
            assert out.shape == expect and int(out.sum()) == math.prod(grid)
        else:
            assert out.shape == tuple(grid) and out.dtype == np.int64
            assert np.array_equal(np.unique(out), np.arange(math.prod(expect)))

    return Case(f"gp.{which}", (grid, window), {"shift": shift}, getattr(gp, which), check)


def t_visible_window_ids(draw: Callable[..., Any]) -> Case:
    mask, window, shift, ndim = draw(window_args())
    if (
        draw(st.booleans())
        and isinstance(mask, np.ndarray)
        and mask.dtype == np.bool_
        and mask.ndim >= 2
        and mask.size
    ):
        keep = int(mask[0].sum())  # equal visible counts per sample, mostly
        flat = mask.reshape(mask.shape[0], -1)
        rng = np.random.default_rng(int(flat.sum()))
        for b in range(flat.shape[0]):
            row = np.zeros(flat.shape[1], dtype=bool)
            row[rng.permutation(flat.shape[1])[: min(keep, flat.shape[1])]] = True
            flat[b] = row
        mask = flat.reshape(mask.shape)
    kwargs: dict[str, Any] = {"shift": shift}
    if ndim is not None:
        kwargs["ndim"] = ndim

    def check(ids: np.ndarray) -> None:
        m = np.asarray(mask)
        nd = _spatial_ndim(m, window, ndim)
        grid = m.shape[m.ndim - nd :]
        index = gp.window_index(grid, window, shift=shift).ravel()
        if m.ndim == nd:
            assert np.array_equal(ids, index[m.ravel()])
            return
        num = math.prod(gp.window_grid(grid, window, shift=shift))
        flat = m.reshape(-1, index.size)
        rows = [index[row] + b * num for b, row in enumerate(flat)]
        assert np.array_equal(ids.reshape(len(rows), -1), np.array(rows).reshape(len(rows), -1))

    return Case("gp.visible_window_ids", (mask, window), kwargs, gp.visible_window_ids, check)


@st.composite
def hiera_args(draw: Callable[..., Any]) -> dict[str, Any]:
    """Arguments of mask_unit_layout that fit (mostly), built from the unit upwards."""
    ndim = draw(st.integers(1, 3))
    qs = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stages = draw(st.integers(1, 4))
    pool = draw(st.integers(0, stages - 1))
    unit = tuple(s**pool * draw(st.integers(1, 2)) for s in qs)
    units = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    patch = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    size = tuple(u * k * p for u, k, p in zip(unit, units, patch, strict=True))
    args = {
        "input_size": size,
        "patch_stride": patch,
        "q_stride": qs,
        "num_stages": stages,
        "mask_unit_size": unit,
        "q_pool": pool if draw(st.booleans()) else None,
    }
    if args["q_pool"] is None and pool != stages - 1:
        args["q_pool"] = pool
    for key in list(args):
        if coin(draw, 0.05):
            args[key] = draw(st.one_of(JUNK, st.integers(-2, 7), st.just((10**9,) * ndim)))
    return args


def t_mask_unit_layout(draw: Callable[..., Any]) -> Case:
    kwargs = draw(hiera_args())
    stage = maybe(draw, st.integers(0, 5), 0.1)

    def check(lay: Any) -> None:
        for k in range(lay.num_stages):
            perm = lay.unroll_index(k)
            inv = lay.reroll_index(k)
            assert np.array_equal(np.sort(perm), np.arange(perm.size))
            assert np.array_equal(perm[inv], np.arange(perm.size))
            ids = lay.mask_unit_ids(k).ravel()[perm]
            assert np.array_equal(ids, np.arange(perm.size) % lay.num_mask_units)
        try:
            lay.unroll_index(stage)
        except GroupingValueError:
            pass
        else:
            assert isinstance(stage, int) and 0 <= stage < lay.num_stages

    return Case("gp.mask_unit_layout", (), kwargs, gp.mask_unit_layout, check)


def t_unroll(draw: Callable[..., Any]) -> Case:
    ndim = draw(st.integers(1, 3))
    strides = [
        tuple(draw(st.integers(1, 3)) for _ in range(ndim)) for _ in range(draw(st.integers(0, 3)))
    ]
    rest = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    grid: Any = tuple(r * math.prod(s[a] for s in strides) for a, r in enumerate(rest))
    schedule: Any = [s[0] if len(set(s)) == 1 and draw(st.booleans()) else s for s in strides]
    if coin(draw, 0.125):
        grid = draw(st.one_of(bad_grids(), JUNK))
    if coin(draw, 0.125):
        schedule = draw(st.one_of(JUNK, st.lists(st.integers(-1, 5), max_size=2)))
    which = draw(st.sampled_from(["unroll_index", "reroll_index", "mask_unit_ids"]))
    if which == "mask_unit_ids":
        unit = maybe(draw, st.integers(1, 3) | st.just(rest))

        def check_ids(ids: np.ndarray) -> None:
            u = (unit,) * len(grid) if isinstance(unit, int) else unit
            assert ids.shape == tuple(grid)
            assert np.array_equal(
                np.unique(ids), np.arange(math.prod(g // k for g, k in zip(grid, u, strict=True)))
            )

        return Case("gp.mask_unit_ids", (grid, unit), {}, gp.mask_unit_ids, check_ids)

    def check(perm: np.ndarray) -> None:
        other = (
            gp.reroll_index(grid, schedule)
            if which == "unroll_index"
            else gp.unroll_index(grid, schedule)
        )
        assert perm.dtype == np.int64 and perm.size == math.prod(grid)
        assert np.array_equal(perm[other], np.arange(perm.size))

    return Case(f"gp.{which}", (grid, schedule), {}, getattr(gp, which), check)


def _reference_plan(name: str, counts: np.ndarray, g: int) -> list[list[int]] | None:
    """The plain-Python reference groups of a heuristic, on small inputs only (the published
    algorithm's reference allocates knapsack tables of ``g`` entries, so not above the total:
    the caller checks that case, one group, directly)."""
    if g > int(counts.sum()) or counts.size**2 * g > 100_000:
        return None
    values = [int(c) for c in counts]
    if name == "greenmim":
        return greenmim_reference(values, g)
    if name == "ffd":
        return [sorted(x) for x in ffd_reference(values, g)]
    if name == "bfd":
        return [sorted(x) for x in bfd_reference(values, g)]
    return None


def _solve_check(counts: Any, group_size: Any, kwargs: dict[str, Any]) -> Callable[[Any], None]:
    def check(plan: GroupingPlan) -> None:
        flat = np.asarray(counts).ravel().astype(np.int64)
        gp.check_plan(plan, flat)
        assert plan.strategy == kwargs.get("strategy", "auto")
        largest = int(flat.max()) if flat.size else 0
        if isinstance(group_size, (int, np.integer)) and not isinstance(group_size, bool):
            assert plan.group_size == int(group_size)
        elif group_size is None:
            assert plan.group_size == max(largest, 1)
        limit = kwargs.get("max_group_size")
        if limit is not None:
            assert plan.group_size <= limit
        channels = kwargs.get("channels")
        if channels is None:
            assert math.isnan(plan.cost)
        else:
            assert plan.cost == gp.attention_cost(plan.num_groups, plan.group_size, channels)
        if 0 < int(flat.sum()) <= plan.group_size:  # documented: one group, every strategy
            assert plan.num_groups == 1, "not one group although every window fits in one"
        ref = _reference_plan(plan.strategy, flat, plan.group_size)
        if ref is not None and plan.strategy == "bfd":  # the reference breaks ties anyhow
            assert plan.num_groups == len(ref), "more groups than the reference BFD"
        elif ref is not None:
            assert [g.tolist() for g in plan.groups] == ref, "differs from the reference"

    return check


def t_solve(draw: Callable[..., Any]) -> Case:
    counts = draw(counts_arrays())
    flat = _as_flat(counts)
    largest = 0
    if flat is not None and flat.size and flat.dtype.kind in "iu":
        largest = int(flat.max())
    group_size = maybe(
        draw,
        st.one_of(
            st.none(),
            st.just("sweep"),
            st.integers(max(largest, 1), max(largest, 1) * 3),
            st.sampled_from([1, 49, 64, 4096, 4097, 10**6, 2**62, 2**63 - 1, 2**63, 0, -1]),
        ),
        0.08,
    )
    kwargs: dict[str, Any] = {}
    kwargs["strategy"] = maybe(draw, st.sampled_from(gp.STRATEGIES), 0.05)
    if draw(st.booleans()) or (isinstance(group_size, str) and group_size == "sweep"):
        kwargs["channels"] = maybe(draw, st.sampled_from([1, 8, 96, 1024, 10**6, 10**12]), 0.08)
    if coin(draw, 0.167):
        kwargs["max_group_size"] = maybe(draw, st.integers(max(largest, 1), max(largest, 1) + 100))
    if coin(draw, 0.167):
        kwargs["node_limit"] = maybe(draw, st.sampled_from([0, 1, 100, 10_000]))
    return Case(
        "gp.solve", (counts, group_size), kwargs, gp.solve, _solve_check(counts, group_size, kwargs)
    )


def t_sweep(draw: Callable[..., Any]) -> Case:
    counts = draw(counts_arrays())
    channels = maybe(draw, st.sampled_from([1, 8, 96, 1024, 10**6]), 0.08)
    kwargs: dict[str, Any] = {"strategy": maybe(draw, st.sampled_from(gp.STRATEGIES), 0.05)}
    if coin(draw, 0.25):
        kwargs["extra"] = maybe(draw, st.integers(0, 20))
    if coin(draw, 0.2):
        kwargs["max_group_size"] = maybe(draw, st.integers(1, 5000))

    def check(result: Any) -> None:
        flat = np.asarray(counts).ravel().astype(np.int64)
        sizes = result.group_sizes
        if not (flat > 0).any():
            assert sizes.size == 0
            return
        assert sizes[0] == flat.max() and (np.diff(sizes) == 1).all()
        assert sizes.size <= 1024 + min(kwargs.get("extra", 0), 1024)
        total = int(flat.sum())
        assert (result.num_groups * sizes >= total).all()
        costs = [
            gp.attention_cost(int(n), int(g), channels)
            for n, g in zip(result.num_groups, sizes, strict=True)
        ]
        assert np.array_equal(result.costs, np.array(costs))
        head = result.costs[: int(np.searchsorted(sizes, result.cap, side="right"))]
        assert result.best == int(np.argmin(head))

    return Case("gp.sweep_group_sizes", (counts, channels), kwargs, gp.sweep_group_sizes, check)


@st.composite
def solved_plans(draw: Callable[..., Any]) -> tuple[GroupingPlan, np.ndarray]:
    n = draw(st.integers(0, 60))
    g = draw(st.sampled_from([1, 5, 49, 64, 100, 300, 5000]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    counts = rng.integers(0, g + 1, size=n)
    strategy = draw(st.sampled_from(gp.STRATEGIES))
    return gp.solve(counts, g, strategy=strategy, node_limit=2000), counts


def t_check_plan(draw: Callable[..., Any]) -> Case:
    plan, counts = draw(solved_plans())
    given_counts: Any = counts if draw(st.booleans()) else None

    def check(out: Any) -> None:
        assert out is None and gp.is_valid_plan(plan, given_counts)

    return Case(
        "gp.check_plan",
        (
            Src(plan, f"gp.solve({source(counts)}, {plan.group_size}, strategy={plan.strategy!r})"),
            given_counts,
        ),
        {},
        gp.check_plan,
        check,
    )


def _corrupt(draw: Callable[..., Any], plan: GroupingPlan, counts: np.ndarray) -> Any:
    """A plan (or a plan-like object) that violates one invariant, with its source."""
    groups = [g.tolist() for g in plan.groups]
    kind = draw(st.integers(0, 13))
    kw = {
        "group_size": plan.group_size,
        "counts": counts,
        "lower_bound": plan.lower_bound,
        "optimal": plan.optimal,
    }
    nonempty = [i for i, c in enumerate(counts) if c > 0]
    if kind == 0 and groups:  # drop a window
        groups[draw(st.integers(0, len(groups) - 1))].pop()
        groups = [g for g in groups if g] or [[]]
    elif kind == 1 and nonempty:  # a window twice
        groups.append([nonempty[0]])
    elif kind == 2:  # an empty window grouped
        empty = [i for i, c in enumerate(counts) if c == 0]
        groups.append([empty[0]] if empty else [len(counts)])
    elif kind == 3:  # out of range
        groups.append([draw(st.sampled_from([-1, len(counts), 2**40]))])
    elif kind == 4 and len(groups) >= 2:  # overfull group
        groups = [groups[0] + groups[1], *groups[2:]]
        kw["optimal"] = False
        kw["lower_bound"] = 0
        if sum(int(counts[i]) for i in groups[0]) <= plan.group_size:
            groups.append([])
    elif kind == 5:
        kw["lower_bound"] = plan.num_groups + draw(st.integers(1, 3))
    elif kind == 6 and plan.num_groups > plan.lower_bound:
        kw["optimal"] = True
    elif kind == 7:
        kw["group_size"] = draw(st.sampled_from([0, -5, 2.5, True, "8", None, float("nan")]))
    elif kind == 8:
        kw["lower_bound"] = draw(st.sampled_from([-1, 2.5, float("nan"), None, "1", 10**30]))
    elif kind == 9:
        kw["optimal"] = draw(st.sampled_from(["yes", None, 2, float("nan")]))
    elif kind == 10:  # raw fields: offsets that do not fit the windows
        bad = GroupingPlan(
            windows=plan.windows,
            offsets=draw(
                st.sampled_from(
                    [
                        np.array([1, 0]),
                        np.array([0, 10**6]),
                        np.array([], dtype=np.int64),
                        np.array([[0, 1]]),
                        np.array([0, -1, plan.windows.size]),
                    ]
                )
            ),
            group_size=plan.group_size,
            counts=counts,
            lower_bound=plan.lower_bound,
            optimal=plan.optimal,
            strategy="corrupt",
        )
        return Src(bad, "GroupingPlan(<corrupted offsets>)")
    elif kind == 11:  # counts that were not solved
        kw["counts"] = np.concatenate([counts, [1]])
    elif kind == 12:  # not a plan at all
        junk = draw(st.one_of(JUNK, st.just(counts), st.builds(lambda: {"groups": []})))
        return Src(junk, source(junk))
    else:  # negative counts in the plan
        kw["counts"] = np.where(np.arange(len(counts)) == 0, -1, counts) if len(counts) else [-1]
    try:
        bad = GroupingPlan.from_groups(groups, **kw)
    except Exception as error:  # building it is not under test; keep the input visible
        return Src(None, f"<from_groups failed: {type(error).__name__}: {error}>")
    return Src(bad, f"GroupingPlan.from_groups({groups!r}, **{source(kw)})")


def t_check_plan_corrupted(draw: Callable[..., Any]) -> Case:
    plan, counts = draw(solved_plans())
    bad = _corrupt(draw, plan, counts)
    valid_anyway = isinstance(bad.value, GroupingPlan) and _really_valid(bad.value)

    def check(out: Any) -> None:
        assert valid_anyway, "accepted a corrupted plan"

    return Case("gp.check_plan", (bad,), {}, gp.check_plan, check)


def t_is_valid_plan(draw: Callable[..., Any]) -> Case:
    plan, counts = draw(solved_plans())
    if draw(st.booleans()):
        target: Any = Src(plan, "<a solved plan>")
        expect = True
    else:
        target = _corrupt(draw, plan, counts)
        expect = isinstance(target.value, GroupingPlan) and _really_valid(target.value)

    def check(out: Any) -> None:
        assert out is expect, (out, expect)

    return Case("gp.is_valid_plan", (target,), {}, gp.is_valid_plan, check)


def _really_valid(plan: GroupingPlan) -> bool:
    """A plain re-statement of the plan invariants (the checker's oracle)."""
    try:
        counts = [int(c) for c in np.asarray(plan.counts).ravel()]
        g, lb, optimal = plan.group_size, plan.lower_bound, plan.optimal
        if type(g) is not int or g < 1 or type(lb) is not int or type(optimal) is not bool:
            return False
        offsets = [int(o) for o in np.asarray(plan.offsets).ravel()]
        if np.asarray(plan.offsets).ndim != 1 or not offsets or offsets[0] != 0:
            return False
        windows = [int(w) for w in np.asarray(plan.windows).ravel()]
        if offsets[-1] != len(windows) or any(
            b < a for a, b in zip(offsets, offsets[1:], strict=False)
        ):
            return False
        groups = [windows[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]
        seen = [0] * len(counts)
        for grp in groups:
            if not grp or any(not 0 <= w < len(counts) for w in grp):
                return False
            if sum(counts[w] for w in grp) > g:
                return False
            for w in grp:
                seen[w] += 1
        if any(c < 0 for c in counts):
            return False
        if any((s != 1) if c > 0 else (s != 0) for s, c in zip(seen, counts, strict=True)):
            return False
        total = sum(counts)
        return -(-total // g) <= lb <= len(groups) and (not optimal or len(groups) == lb)
    except Exception:
        return False


def t_assign_groups(draw: Callable[..., Any]) -> Case:
    dims = maybe(draw, st.lists(st.integers(1, 5000), min_size=1, max_size=4))
    if isinstance(dims, list) and dims and coin(draw, 0.1):
        dims[0] = 10**15
    k = len(dims) if isinstance(dims, list) else 1
    g = maybe(draw, st.integers(k, k + 200) | st.sampled_from([2**20, 2**20 + 1, 10**9]))

    def check(out: Any) -> None:
        groups, length = out
        assert sum(groups) == g and all(x >= 1 for x in groups) and len(groups) == len(dims)
        assert length == max(-(-n // x) for n, x in zip(dims, groups, strict=True))
        if g <= 20_000:  # the official greedy, one group at a time
            plain = [1] * len(dims)
            for _ in range(g - len(dims)):
                m = max(range(len(dims)), key=lambda i: (dims[i] / plain[i], -i))
                plain[m] += 1
            assert tuple(plain) == groups, (plain, groups)

    return Case("gp.assign_groups", (g, dims), {}, gp.assign_groups, check)


def t_group_layout(draw: Callable[..., Any]) -> Case:
    dims = maybe(draw, st.lists(st.integers(1, 3000), min_size=1, max_size=4))
    if isinstance(dims, list) and dims and coin(draw, 0.1):
        dims[0] = 10**12
    k = len(dims) if isinstance(dims, list) else 1
    g = maybe(draw, st.integers(k, k + 60) | st.just(2**20))

    def check(lay: GroupLayout) -> None:
        if lay.num_groups > 5000:  # the checker loops over groups in Python: check the shape
            assert lay.index.shape == (g, lay.group_len) and lay.num_tokens == sum(dims)
            return
        gp.check_group_layout(lay)
        x = np.arange(lay.num_tokens * 2).reshape(-1, 2)
        assert np.array_equal(gp.ungroup_array(gp.group_array(x, lay), lay), x)

    return Case("gp.group_layout", (g, dims), {}, gp.group_layout, check)


def t_check_group_layout(draw: Callable[..., Any]) -> Case:
    dims = draw(st.lists(st.integers(1, 200), min_size=1, max_size=3))
    lay = gp.group_layout(draw(st.integers(len(dims), len(dims) + 20)), dims)
    kind = draw(st.integers(0, 7))
    if kind == 0:
        bad: Any = Src(lay, "<a valid layout>")
    elif kind == 1:
        index = lay.index.copy()
        index.ravel()[0] = -1 if index.ravel()[0] >= 0 else 0
        bad = Src(dataclasses.replace(lay, index=index), "<index changed>")
    elif kind == 2:
        bad = Src(dataclasses.replace(lay, group_len=lay.group_len + 1), "<group_len + 1>")
    elif kind == 3:
        bad = Src(dataclasses.replace(lay, inverse=lay.inverse[::-1].copy()), "<inverse reversed>")
    elif kind == 4:
        groups = (0,) + lay.groups_per_modality[1:]
        bad = Src(
            dataclasses.replace(lay, groups_per_modality=groups), "<a modality without groups>"
        )
    elif kind == 5:
        pad = tuple(p + 1 for p in lay.final_padding)
        bad = Src(dataclasses.replace(lay, final_padding=pad), "<final_padding + 1>")
    elif kind == 6:
        bad = Src(dataclasses.replace(lay, index=lay.index[:, ::-1].copy()), "<rows reversed>")
    else:
        junk = draw(JUNK)
        bad = Src(junk, source(junk))
    valid = kind == 0 or (kind == 6 and lay.group_len == 1) or (kind == 3 and lay.num_tokens == 1)

    def check(out: Any) -> None:
        assert valid, "accepted a corrupted layout"

    return Case("gp.check_group_layout", (bad,), {}, gp.check_group_layout, check)


def t_regroup_index(draw: Callable[..., Any]) -> Case:
    g = maybe(draw, st.integers(1, 64), 0.15, st.one_of(JUNK, st.just(10**6), st.just(10**9)))
    length = maybe(draw, st.integers(1, 64), 0.15, st.one_of(JUNK, st.just(10**9)))
    total = (
        g * length if isinstance(g, int) and isinstance(length, int) and g > 0 and length > 0 else 1
    )
    divisors = [d for d in range(1, min(total, 4096) + 1) if total % d == 0] or [1]
    out_groups = maybe(draw, st.sampled_from(divisors) | st.integers(1, 100))
    kind = maybe(draw, st.sampled_from(gp.REGROUP_TYPES), 0.1)

    def check(index: np.ndarray) -> None:
        slots = np.arange(g * length).reshape(g, length)
        if kind == "transpose_reshape":
            slots = slots.T
        assert np.array_equal(index, slots.reshape(out_groups, -1))

    return Case("gp.regroup_index", (g, length, out_groups, kind), {}, gp.regroup_index, check)


def t_attention_cost(draw: Callable[..., Any]) -> Case:
    n = maybe(draw, st.integers(0, 10**6))
    g = maybe(draw, st.integers(1, 10**4))
    c = maybe(draw, st.integers(1, 4096))

    def check(cost: Any) -> None:
        assert isinstance(cost, float) and cost == float(n) * (4.0 * g * c * c + 2.0 * g * g * c)

    return Case("gp.attention_cost", (n, g, c), {}, gp.attention_cost, check)


@dataclass(frozen=True)
class Target:
    """A fuzz target: a name, a drawer of cases and its share of the calls."""

    name: str
    draw: Callable[[Callable[..., Any]], Case]
    weight: float = 1.0


TARGETS = (
    Target("keep_count", t_keep_count, 0.5),
    Target("batch_mask", t_batch_mask),
    Target("sample_masks", t_sample_masks),
    Target("groupwise_masks", t_groupwise_masks),
    Target("upsample_mask", t_upsample_mask),
    Target("window_counts", t_window_counts),
    Target("window_grid/shape/index", t_window_grid),
    Target("visible_window_ids", t_visible_window_ids),
    Target("mask_unit_layout", t_mask_unit_layout),
    Target("unroll/reroll/mask_unit_ids", t_unroll),
    Target("solve", t_solve, 4.0),
    Target("sweep_group_sizes", t_sweep, 1.0),
    Target("check_plan (solved plans)", t_check_plan),
    Target("check_plan (corrupted plans)", t_check_plan_corrupted),
    Target("is_valid_plan", t_is_valid_plan),
    Target("assign_groups", t_assign_groups, 0.5),
    Target("group_layout", t_group_layout),
    Target("check_group_layout", t_check_group_layout),
    Target("regroup_index", t_regroup_index, 0.5),
    Target("attention_cost", t_attention_cost, 0.5),
)


# --- running and recording --------------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes of one target."""

    calls: int = 0
    ok: int = 0
    error: int = 0
    escape: int = 0
    wrong: int = 0
    slow: int = 0
    max_s: float = 0.0
    total_s: float = 0.0
    functions: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # library errors by message start


@dataclass
class Recorder:
    bound: float
    hang: float = HANG_S
    tallies: dict[str, Tally] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    slowest: list[tuple[float, str, str]] = field(default_factory=list)

    def run(self, target: str, case: Case) -> None:
        tally = self.tallies.setdefault(target, Tally())
        tally.calls += 1
        tally.functions[case.name] = tally.functions.get(case.name, 0) + 1
        start = time.perf_counter()
        outcome, detail = "ok", ""
        signal.setitimer(signal.ITIMER_REAL, self.hang)
        try:
            result = case.call()
        except GroupingValueError as error:
            outcome = "error"
            key = str(error)[:48]
            tally.errors[key] = tally.errors.get(key, 0) + 1
        except (Exception, Hung) as error:  # noqa: BLE001 - what the fuzzer is looking for
            outcome = "escape"
            detail = f"{type(error).__module__}.{type(error).__name__}: {error}"[:1000]
            detail += "\n" + "".join(traceback.format_tb(error.__traceback__)[-3:])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.perf_counter() - start
        if outcome == "ok" and case.check is not None:
            signal.setitimer(signal.ITIMER_REAL, self.hang)
            try:
                case.check(result)
            except (Exception, Hung) as error:  # noqa: BLE001
                outcome = "wrong"
                detail = f"{type(error).__name__}: {error}"[:1000]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        tally.max_s = max(tally.max_s, elapsed)
        tally.total_s += elapsed
        self.slowest.append((elapsed, target, case.source()[:300]))
        if len(self.slowest) > 64:
            self.slowest.sort(reverse=True)
            del self.slowest[16:]
        if elapsed > self.bound:
            tally.slow += 1
        if outcome in ("escape", "wrong") or elapsed > self.bound:
            self.failures.append(
                {
                    "target": target,
                    "outcome": outcome
                    if elapsed <= self.bound
                    else f"slow ({elapsed:.2f} s), {outcome}",
                    "detail": detail,
                    "call": case.source(),
                }
            )


def run_target(target: Target, examples: int, recorder: Recorder, seed_value: int) -> None:
    """Run ``examples`` Hypothesis examples of ``target`` (generation only, no shrinking)."""

    @seed(seed_value)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=False,
        print_blob=False,
    )
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        case = target.draw(data.draw)
        recorder.run(target.name, case)

    fuzz()


def machine() -> dict[str, Any]:
    """The machine and versions (the benchmarks' ``machine_info``, with hypothesis's)."""
    from _common import machine_info, versions  # stdlib, numpy and grouping only

    return {**machine_info(), **versions("hypothesis")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="total calls (default 100000)")
    parser.add_argument("--quick", action="store_true", help="about 2,000 calls")
    parser.add_argument("--bound", type=float, default=BOUND_S, help="per-call bound, seconds")
    parser.add_argument(
        "--hang", type=float, default=HANG_S, help="watchdog per call and check, seconds"
    )
    parser.add_argument(
        "--memory-gib", type=float, default=MEMORY_GIB, help="address-space limit (0: none)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default="", help="comma-separated subset (name prefixes)")
    parser.add_argument("--out", default=None, help="JSON output (default docs/results/fuzz.json)")
    args = parser.parse_args(argv)
    calls = args.calls if args.calls is not None else (2_000 if args.quick else 100_000)
    chosen = [
        t
        for t in TARGETS
        if not args.targets or any(t.name.startswith(p) for p in args.targets.split(","))
    ]
    out = (
        Path(args.out)
        if args.out
        else REPO / "docs" / "results" / ("fuzz_quick.json" if args.quick else "fuzz.json")
    )

    started = time.perf_counter()
    warm = time.perf_counter()
    gp.warmup()
    warm = time.perf_counter() - warm
    signal.signal(signal.SIGALRM, _alarm)
    if args.memory_gib > 0:
        limit = int(args.memory_gib * 2**30)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    recorder = Recorder(args.bound, args.hang)
    weight = sum(t.weight for t in chosen)
    for target in chosen:
        examples = max(1, round(calls * target.weight / weight))
        t0 = time.perf_counter()
        run_target(target, examples, recorder, args.seed * 1000 + TARGETS.index(target))
        tally = recorder.tallies.get(target.name, Tally())
        print(
            f"{target.name:30s} {tally.calls:7d} calls  ok {tally.ok:6d}  error {tally.error:6d}  "
            f"escape {tally.escape:3d}  wrong {tally.wrong:3d}  slow {tally.slow:3d}  "
            f"max {tally.max_s * 1e3:8.1f} ms  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    elapsed = time.perf_counter() - started
    totals = Tally()
    for tally in recorder.tallies.values():
        for key in ("calls", "ok", "error", "escape", "wrong", "slow"):
            setattr(totals, key, getattr(totals, key) + getattr(tally, key))
        totals.max_s = max(totals.max_s, tally.max_s)
    passed = totals.escape == 0 and totals.wrong == 0 and totals.slow == 0
    recorder.slowest.sort(reverse=True)
    result = {
        "benchmark": "fuzz",
        "machine": machine(),
        "parameters": {
            "calls": calls,
            "quick": args.quick,
            "bound_s": args.bound,
            "hang_s": args.hang,
            "memory_gib": args.memory_gib,
            "seed": args.seed,
            "targets": [t.name for t in chosen],
            "elapsed_s": round(elapsed, 1),
            "warmup_s": round(warm, 2),
            "command": " ".join(["bench/fuzz.py", *(argv if argv is not None else sys.argv[1:])]),
            "pid": os.getpid(),
        },
        "passed": passed,
        "totals": dataclasses.asdict(totals) | {"functions": None},
        "targets": {name: dataclasses.asdict(t) for name, t in recorder.tallies.items()},
        "slowest": [
            {"s": round(s, 4), "target": t, "call": c} for s, t, c in recorder.slowest[:10]
        ],
        "failures": recorder.failures[:200],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    import json

    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(
        f"\n{totals.calls} calls in {elapsed:.0f} s: ok {totals.ok}, "
        f"library errors {totals.error}, "
        f"escapes {totals.escape}, wrong {totals.wrong}, slow (> {args.bound:g} s) {totals.slow}; "
        f"slowest call {totals.max_s * 1e3:.0f} ms -> {out}"
    )
    for failure in recorder.failures[:20]:
        head = f"[{failure['target']}] {failure['outcome']}: {failure['detail']}"
        print(f"\n{head}\n  {failure['call'][:600]}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
