"""Layers shared by every model family.

Names follow timm where timm has the layer (``Mlp.fc1/fc2``, ``Attention.qkv/proj``,
``Block.norm1/attn/norm2/mlp``, ``PatchEmbed.proj/norm``), so that checkpoints of the published
models load by name. Plain functions do the work; the modules are thin wrappers.

Visible-token indices (the one convention every family uses): an index is int64 ``[N]`` when one
mask is shared by the batch, or ``[B, N]`` with one row per sample, holding positions in
``[0, L)`` of each sample's ``L`` tokens. :func:`gather_visible` and :func:`place_visible` take
either form and tell them apart by the index's rank, so no ``shared`` flag travels through the
models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import as_int_tuple, check_heads, check_int, invalid

__all__ = [
    "ACTIVATION_LAYERS",
    "Attention",
    "Block",
    "CrossAttention",
    "DropPath",
    "GELUTanh",
    "Mlp",
    "PatchEmbed",
    "SquaredReLU",
    "activation_layer",
    "attend",
    "drop_path",
    "gather_visible",
    "patchify",
    "place_visible",
    "unpatchify",
]


# -- plain functions -----------------------------------------------------------------------------


def _flat_index(index: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """``[B, N]`` per-sample positions -> ``[B * N]`` positions in the flattened ``[B * L]``."""
    offsets = torch.arange(batch, device=index.device, dtype=index.dtype)[:, None] * length
    return (index + offsets).reshape(-1)


def _check_index(
    index: torch.Tensor, batch: int, length: int | None = None, name: str = "index"
) -> None:
    if not isinstance(index, torch.Tensor) or index.dtype not in (torch.int64, torch.int32):
        what = index.dtype if isinstance(index, torch.Tensor) else type(index).__name__
        raise invalid(name, "an int64 tensor [N] or [B, N]", what)
    if index.dim() == 2 and index.shape[0] != batch:
        raise invalid(name, f"[N] or [{batch}, N] (the batch)", tuple(index.shape))
    if index.dim() not in (1, 2):
        raise invalid(name, "an int64 tensor [N] or [B, N]", tuple(index.shape))
    # The range is checked where it costs no device synchronisation (a CPU index); indices
    # that models use come from ``prepare``, which builds them in range.
    if length is not None and index.device.type == "cpu" and index.numel():
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= length:
            raise invalid(name, f"positions in [0, {length})", f"positions in [{low}, {high}]")


def _check_tensor(name: str, x: Any, expected: str, ndim: int, width: int | None = None) -> None:
    """``x`` is a floating-point tensor of rank ``ndim`` (and last dimension ``width``)."""
    if not isinstance(x, torch.Tensor):
        raise invalid(name, expected, type(x).__name__)
    if x.dim() != ndim or (width is not None and x.shape[-1] != width):
        raise invalid(name, expected, f"shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise invalid(name, f"a floating-point tensor {expected[2:]}", x.dtype)


def gather_visible(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Take the visible tokens of every sample.

    Args:
        x: ``[B, L, *C]`` all tokens.
        index: int64 ``[N]`` (the same positions for every sample) or ``[B, N]`` (per sample),
            positions in ``[0, L)``.

    Returns:
        ``[B, N, *C]`` with ``out[b, i] = x[b, index[i]]`` (or ``x[b, index[b, i]]``).

    Examples:
        >>> x = torch.arange(6.0).reshape(2, 3, 1)
        >>> gather_visible(x, torch.tensor([2, 0]))[..., 0].tolist()
        [[2.0, 0.0], [5.0, 3.0]]
        >>> gather_visible(x, torch.tensor([[1], [2]]))[..., 0].tolist()
        [[1.0], [5.0]]
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise invalid("x", "a tensor [B, L, *C]", getattr(x, "shape", type(x).__name__))
    _check_index(index, x.shape[0], x.shape[1])
    if index.dim() == 1:
        return x.index_select(1, index)
    b, length = x.shape[:2]
    rest = x.shape[2:]
    flat = x.reshape(b * length, *rest).index_select(0, _flat_index(index, b, length))
    return flat.reshape(b, index.shape[1], *rest)


def place_visible(fill: torch.Tensor, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Put visible tokens back at their positions; ``fill`` everywhere else.

    The inverse of :func:`gather_visible` on the visible positions (MAE's decoder input:
    latents where visible, mask tokens where masked).

    Args:
        fill: ``[1 or B, L, C]`` (broadcast over the batch), e.g. the mask token expanded.
        x: ``[B, N, C]`` visible tokens.
        index: int64 ``[N]`` or ``[B, N]``, as for :func:`gather_visible`.

    Returns:
        ``[B, L, C]`` with ``out[b, index[b, i]] = x[b, i]`` and ``fill`` elsewhere.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise invalid("x", "a tensor [B, N, C]", getattr(x, "shape", type(x).__name__))
    if not isinstance(fill, torch.Tensor) or fill.dim() != 3 or fill.shape[-1] != x.shape[-1]:
        raise invalid(
            "fill", f"a tensor [1 or B, L, {x.shape[-1]}]", getattr(fill, "shape", type(fill))
        )
    _check_index(index, x.shape[0], fill.shape[-2])
    b, n, c = x.shape
    if index.shape[-1] != n:
        raise invalid("x", f"{index.shape[-1]} tokens per sample (the index)", f"shape {(b, n, c)}")
    length = fill.shape[-2]
    full = fill.to(x.dtype).expand(b, length, c)
    if index.dim() == 1:
        return full.index_copy(1, index, x)  # B, L, C (a new tensor)
    out = full.reshape(b * length, c).index_copy(0, _flat_index(index, b, length), x.reshape(-1, c))
    return out.reshape(b, length, c)


def patchify(images: torch.Tensor, patch: int, *, channels_last: bool = True) -> torch.Tensor:
    """Cut images into non-overlapping patches.

    Args:
        images: ``[B, C, H, W]``.
        patch: patch side ``P`` in pixels (divides ``H`` and ``W``).
        channels_last: pixel order within a patch: ``(p, q, c)`` (MAE's, the default) or
            ``(c, p, q)`` (a convolution's weight order; Hiera's pixel labels).

    Returns:
        ``[B, (H/P) * (W/P), P * P * C]``, patches row-major.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise invalid("images", "a tensor [B, C, H, W]", getattr(images, "shape", images))
    patch = check_int("patch", patch, minimum=1)
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise invalid("images", f"H and W multiples of the patch {patch}", f"shape {(b, c, h, w)}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)  # B, C, h, P, w, P
    if channels_last:
        x = x.permute(0, 2, 4, 3, 5, 1)  # B, h, w, P, P, C
    else:
        x = x.permute(0, 2, 4, 1, 3, 5)  # B, h, w, C, P, P
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify` (MAE's order): ``[B, h*w, P*P*C]`` -> ``[B, C, h*P, w*P]``."""
    h, w = grid
    if (
        not isinstance(patches, torch.Tensor)
        or patches.dim() != 3
        or patches.shape[1] != h * w
        or patches.shape[2] % (patch * patch)
    ):
        raise invalid(
            "patches",
            f"a tensor [B, {h * w}, P * P * C] (grid {grid}, patch {patch})",
            getattr(patches, "shape", type(patches).__name__),
        )
    b = patches.shape[0]
    x = patches.reshape(b, h, w, patch, patch, -1)  # B, h, w, P, P, C
    x = x.permute(0, 5, 1, 3, 2, 4)  # B, C, h, P, w, P
    return x.reshape(b, -1, h * patch, w * patch)


def drop_path(
    x: torch.Tensor, p: float, training: bool, scale_by_keep: bool = True
) -> torch.Tensor:
    """Stochastic depth (timm's ``drop_path``): zero whole samples with probability ``p``.

    Args:
        x: ``[B, ...]``; one draw per sample (index of the first axis), broadcast over the rest.
        p: the drop probability, in ``[0, 1)``.
        training: drop only at train time (the identity otherwise, and at ``p = 0``).
        scale_by_keep: scale the kept samples by ``1 / (1 - p)`` (timm's default), so that the
            expectation is unchanged; False keeps them as they are (HiP's official
            ``StochasticDepth``).

    Returns:
        A tensor like ``x``.

    Example:
        >>> y = drop_path(torch.ones(4, 3), 0.5, True, scale_by_keep=False)
        >>> bool(((y == 0) | (y == 1)).all()), bool((y.std(dim=1) == 0).all())
        (True, True)
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    draw = x.new_empty(shape).bernoulli_(keep)
    return x * (draw.div_(keep) if scale_by_keep else draw)


# -- modules -------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """Stochastic depth per sample (see :func:`drop_path`); the identity at ``p = 0``."""

    def __init__(self, p: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise invalid("drop_path", "a probability in [0, 1)", p)
        self.p = float(p)
        self.scale_by_keep = bool(scale_by_keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, self.scale_by_keep)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.scale_by_keep else ", scale_by_keep=False")


class SquaredReLU(nn.Module):
    """``relu(x) ** 2``, the activation of HiP (and Primer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x).square()


class GELUTanh(nn.GELU):
    """GELU's tanh approximation (``jax.nn.gelu``'s default, transformers' ``gelu_new``)."""

    def __init__(self) -> None:
        super().__init__(approximate="tanh")


# The one table of MLP activations, by the names every family uses: "gelu" is the exact (erf)
# GELU, "gelu_tanh" its tanh approximation. Families that read other names (HiP's Haiku
# arguments, transformers' hidden_act) map them to these where their arguments come in.
ACTIVATION_LAYERS: Mapping[str, type[nn.Module]] = MappingProxyType(
    {
        "gelu": nn.GELU,
        "gelu_tanh": GELUTanh,
        "relu": nn.ReLU,
        "silu": nn.SiLU,
        "squared_relu": SquaredReLU,
    }
)


def activation_layer(
    name: str, *, choices: Sequence[str] | None = None, arg: str = "activation"
) -> type[nn.Module]:
    """The activation module class called ``name`` in :data:`ACTIVATION_LAYERS`.

    Args:
        name: a key of :data:`ACTIVATION_LAYERS`.
        choices: the names the caller accepts (default: all of them).
        arg: the argument's name in the error.

    Raises:
        GroupingValueError: for a name outside ``choices``.

    Example:
        >>> activation_layer("gelu_tanh")().approximate
        'tanh'
    """
    allowed = tuple(ACTIVATION_LAYERS) if choices is None else tuple(choices)
    if not isinstance(name, str) or name not in allowed or name not in ACTIVATION_LAYERS:
        raise invalid(arg, f"one of {allowed}", name)
    return ACTIVATION_LAYERS[name]


class Mlp(nn.Module):
    """timm's ``Mlp``: ``fc1``, activation, ``fc2``.

    Args:
        dim: input (and default output) width.
        hidden: hidden width.
        out_dim: output width (default ``dim``).
        act_layer: activation module class (default exact GELU).
        drop: dropout after the activation and after ``fc2``.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        out_dim: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim if out_dim is None else out_dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:  # [B, N, h*d] -> [B, h, N, d]
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention, timm's ViT ``Attention`` (fused ``qkv``, ``proj``).

    Runs on :func:`torch.nn.functional.scaled_dot_product_attention` with 4-D ``[B, h, N, d]``
    tensors, so the fused kernels apply.

    Args:
        dim: width ``C``.
        num_heads: heads (divide ``dim``).
        qkv_bias: learn a bias for ``qkv``.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after ``proj``.

    Shape:
        ``forward(x [B, N, C], attn_mask=None) -> [B, N, C]``; ``attn_mask`` as for
        ``scaled_dot_product_attention`` (bool: True = may attend, or additive float),
        broadcast to ``[B, h, N, N]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        dim, num_heads = check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = float(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        dim = self.qkv.in_features
        _check_tensor("x", x, f"a tensor [B, N, {dim}]", 3, dim)
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)  # B, N, 3, h, d
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, h, N, d]
        drop = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))  # B, N, C


_PAD_MAX_WIDTH = 32  # widest value heads that attend() pads q and k to (see its Notes)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """:func:`~torch.nn.functional.scaled_dot_product_attention` whose query/key and value heads
    may differ in width (Perceiver IO's).

    torch's CPU flash kernel needs one head width for ``q``, ``k`` and ``v``; without it SDPA
    falls back to its math path, which stores the attention probabilities for the backward.
    On the CPU, when the query/key heads are narrower than value heads of at most
    ``_PAD_MAX_WIDTH`` (32) channels, ``q`` and ``k`` are zero-padded to the value width and
    the scale is kept at ``1 / sqrt(d_qk)``: the same scores (the padded lanes add zeros), so
    the same result, from the flash kernel, without the stored probabilities.

    Notes:
        Padding makes the score products ``d_v / d_qk`` times wider, which pays only while
        they are cheap next to the math path's softmax passes. Forward plus backward, one
        thread, 8 x 8 heads of 128 x 128 (torch 2.13, AMD EPYC): 8 -> 32 channels 1.24x
        faster padded, 16 -> 64 0.95x, 32 -> 128 0.72x; one head of 128 x 4096 keys,
        64 -> 256: 0.39x. Hence the bound on the padded width.

    Args:
        q: ``[B, h, M, d_qk]``.
        k: ``[B, h, N, d_qk]``.
        v: ``[B, h, N, d_v]``.
        attn_mask: broadcast to ``[B, h, M, N]`` (bool: True = may attend, or additive float).
        dropout_p: dropout on the attention probabilities.

    Returns:
        ``[B, h, M, d_v]``.
    """
    d_qk, d_v = q.shape[-1], v.shape[-1]
    if d_qk < d_v <= _PAD_MAX_WIDTH and q.device.type == "cpu" and dropout_p == 0.0:
        # padded in the [B, N, h, d] order that _heads' views have, so that the output keeps
        # it too and [B, N, h * d_v] is a view of it (not a copy next to the one saved)
        q = F.pad(q.transpose(1, 2), (0, d_v - d_qk)).transpose(1, 2)
        k = F.pad(k.transpose(1, 2), (0, d_v - d_qk)).transpose(1, 2)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=d_qk**-0.5
    )


class CrossAttention(nn.Module):
    """Multi-head attention from queries to keys/values of another set (the Perceiver family).

    Separate ``q``, ``k``, ``v`` projections and an output ``proj``, with the widths Perceiver
    IO uses: queries and keys are projected to ``qk_channels``, values to ``v_channels``, and
    the output to ``out_dim``. With the same tensor as queries and keys/values it is
    self-attention with those widths.

    Args:
        q_dim: width of the queries.
        kv_dim: width of the keys/values input.
        num_heads: heads (divide ``qk_channels`` and ``v_channels``).
        qk_channels: query/key width (default ``q_dim``).
        v_channels: value width (default ``qk_channels``).
        out_dim: output width (default ``q_dim``).
        qkv_bias: learn biases for ``q``, ``k``, ``v``.
        attn_drop: dropout on the attention weights (training only).

    Shape:
        ``forward(queries [B, M, q_dim], inputs [B, N, kv_dim], attn_mask=None)
        -> [B, M, out_dim]``; ``attn_mask`` broadcast to ``[B, h, M, N]`` (bool: True = may
        attend).
    """

    def __init__(
        self,
        q_dim: int,
        kv_dim: int,
        num_heads: int,
        *,
        qk_channels: int | None = None,
        v_channels: int | None = None,
        out_dim: int | None = None,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        q_dim = check_int("q_dim", q_dim, minimum=1)
        kv_dim = check_int("kv_dim", kv_dim, minimum=1)
        heads = check_int("num_heads", num_heads, minimum=1)
        qk = q_dim if qk_channels is None else check_int("qk_channels", qk_channels, minimum=1)
        vc = qk if v_channels is None else check_int("v_channels", v_channels, minimum=1)
        for name, width in (("qk_channels", qk), ("v_channels", vc)):
            if width % heads:
                raise invalid("num_heads", f"a divisor of {name}={width}", heads)
        self.num_heads = heads
        self.q = nn.Linear(q_dim, qk, bias=qkv_bias)
        self.k = nn.Linear(kv_dim, qk, bias=qkv_bias)
        self.v = nn.Linear(kv_dim, vc, bias=qkv_bias)
        self.proj = nn.Linear(vc, q_dim if out_dim is None else out_dim)
        self.attn_drop = float(attn_drop)

    def forward(
        self,
        queries: torch.Tensor,
        inputs: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q_dim, kv_dim = self.q.in_features, self.k.in_features
        _check_tensor("queries", queries, f"a tensor [B, M, {q_dim}]", 3, q_dim)
        _check_tensor("inputs", inputs, f"a tensor [B, N, {kv_dim}]", 3, kv_dim)
        if inputs.shape[0] != queries.shape[0]:
            raise invalid(
                "inputs",
                f"the batch of the queries ({queries.shape[0]})",
                f"shape {tuple(inputs.shape)}",
            )
        h = self.num_heads
        q = _heads(self.q(queries), h)  # B, h, M, d_qk
        k = _heads(self.k(inputs), h)  # B, h, N, d_qk
        v = _heads(self.v(inputs), h)  # B, h, N, d_v
        drop = self.attn_drop if self.training else 0.0
        x = attend(q, k, v, attn_mask, drop)
        b, _, m, _ = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, m, -1))  # B, M, out_dim


class Block(nn.Module):
    """Pre-norm transformer block, timm's ViT ``Block``: ``x + attn(norm1(x))``, then
    ``x + mlp(norm2(x))``, each branch through stochastic depth.

    Args:
        dim: width.
        num_heads: heads.
        mlp_ratio: MLP hidden width over ``dim``.
        qkv_bias: learn a bias for ``qkv``.
        drop_path: stochastic depth probability of both branches.
        norm_eps: LayerNorm eps.
        act_layer: MLP activation class.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        act_layer: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Patch embedding, timm's ``PatchEmbed``: a convolution ``proj`` then an optional ``norm``.

    Works in 2-D (images) or 3-D (video), by the length of ``patch_size``. When the kernel
    equals the stride and there is no padding (non-overlapping patches), the convolution is a
    linear map of every patch and :meth:`forward_visible` projects the visible patches only.

    Args:
        in_chans: input channels.
        embed_dim: output width.
        patch_size: kernel, an int (2-D) or a tuple per spatial axis.
        stride: stride (default the kernel).
        padding: padding (default 0).
        norm_eps: LayerNorm eps of ``norm``; None for no norm (``norm`` is then the identity
            and has no parameters).
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        patch_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        norm_eps: float | None = None,
    ) -> None:
        super().__init__()
        ndim = 2 if isinstance(patch_size, int) else len(tuple(patch_size))
        if ndim not in (2, 3):
            raise invalid("patch_size", "an int or a tuple of 2 or 3 ints", patch_size)
        self.kernel = as_int_tuple("patch_size", patch_size, ndim)
        self.stride = self.kernel if stride is None else as_int_tuple("stride", stride, ndim)
        self.padding = as_int_tuple("padding", padding, ndim, minimum=0)
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        self.proj = conv(in_chans, embed_dim, self.kernel, stride=self.stride, padding=self.padding)
        self.norm = nn.Identity() if norm_eps is None else nn.LayerNorm(embed_dim, eps=norm_eps)

    @property
    def non_overlapping(self) -> bool:
        """True when patches do not overlap (kernel = stride, no padding)."""
        return self.kernel == self.stride and not any(self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, *S]`` -> ``[B, *S', E]`` (channels last), every patch embedded."""
        self._check_input(x)
        y = self.proj(x)  # B, E, *S'
        return self.norm(y.movedim(1, -1))

    def _check_input(self, x: Any) -> None:
        chans, nd = self.proj.in_channels, len(self.kernel)
        expected = f"a tensor [B, {chans}, {', '.join('S' + str(i + 1) for i in range(nd))}]"
        _check_tensor("x", x, expected, 2 + nd)
        if x.shape[1] != chans:
            raise invalid("x", expected, f"shape {tuple(x.shape)}")

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, *S]`` -> ``[B, L, C * prod(kernel)]``: every patch in the conv weight's
        order ``(c, k1, k2, ...)``, patches row-major (needs non-overlapping patches)."""
        if not self.non_overlapping:
            raise invalid(
                "patch_embed", "non-overlapping patches (kernel = stride, no padding)", self
            )
        self._check_input(x)
        if any(s % k for s, k in zip(x.shape[2:], self.kernel, strict=True)):
            raise invalid(
                "x", f"sizes that are multiples of the patch {self.kernel}", tuple(x.shape)
            )
        b, c = x.shape[:2]
        grid = [s // k for s, k in zip(x.shape[2:], self.kernel, strict=True)]
        split = [d for g, k in zip(grid, self.kernel, strict=True) for d in (g, k)]
        x = x.reshape(b, c, *split)  # B, C, g1, k1, g2, k2, ...
        nd = len(grid)
        order = [0, *(2 + 2 * i for i in range(nd)), 1, *(3 + 2 * i for i in range(nd))]
        x = x.permute(order)  # B, g1, g2, ..., C, k1, k2, ...
        return x.reshape(b, math.prod(grid), c * math.prod(self.kernel))

    def forward_visible(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Embed the visible patches only: ``[B, C, *S]`` -> ``[B, N, E]``.

        Args:
            x: the input.
            index: visible patches, int64 ``[N]`` or ``[B, N]`` positions in the row-major
                patch grid (see :func:`gather_visible`).
        """
        x = gather_visible(self.patches(x), index)  # B, N, C * prod(k)
        weight = self.proj.weight.reshape(self.proj.out_channels, -1)
        return self.norm(F.linear(x, weight, self.proj.bias))
