"""Perceiver IO: encode any input into a small latent array, process it, decode with queries.

Jaegle et al. (2021/22). An encoder cross-attends from ``N`` learned latents to the ``M``
preprocessed inputs, then runs ``num_blocks`` repeats of a block of self-attention layers (the
same weights every repeat); a decoder cross-attends from output queries to the latents, so the
cost is linear in the input and output sizes. The blocks here are shaped for reuse by HiP
(:mod:`grouping.models.hip`): every attention module takes the channel, head and widening
options both families need.

Names and conventions:

* :class:`PerceiverAttention` is Perceiver IO's attention *layer*: layer-normed queries (and
  keys/values for cross-attention), multi-head attention through
  :func:`~torch.nn.functional.scaled_dot_product_attention` (:class:`~grouping.models.layers.\
CrossAttention`), an optional query residual, then an MLP with a widening factor and its own
  residual.
* Inputs are channels-last ``[B, M, C]`` after preprocessing; positions are flattened
  row-major over the index dimensions.
* GELU is exact by default (what transformers uses); ``activation="gelu_tanh"`` gives the tanh
  approximation of the original JAX code (``jax.nn.gelu`` defaults to ``approximate=True``).
  The two differ by up to ~1e-3 per activation; use the one a checkpoint was trained with.

Differences from transformers' ``PerceiverModel`` (all on paths that ``from_transformers`` does
not need): the ``"pixels"`` preprocessor downsamples the spatial axes (transformers slices the
batch and channel axes of a 4-D input); sub-sampled decoding gathers the full query array at the
chosen positions, so it equals full decoding there (transformers recomputes Fourier positions
as ``-1 + 2 i / n``, which differs from the grid's ``linspace(-1, 1, n)``).

References:
    Jaegle, Andrew, et al. "Perceiver IO: A General Architecture for Structured Inputs &
    Outputs." ICLR 2022. Jaegle, Andrew, et al. "Perceiver: General Perception with Iterative
    Attention." ICML 2021.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.errors import as_int_tuple, check_int, invalid
from .layers import CrossAttention, Mlp, activation_layer, gather_visible

__all__ = [
    "AudioPreprocessor",
    "BasicDecoder",
    "ClassificationDecoder",
    "ConcatInputs",
    "ImagePreprocessor",
    "MultimodalDecoder",
    "MultimodalPreprocessor",
    "PerceiverAttention",
    "PerceiverEncoder",
    "PerceiverIO",
    "PerceiverIOConfig",
    "PositionEncoding",
    "concat_cross_attention",
    "convert_transformers_state_dict",
    "fourier_features",
    "from_transformers",
    "materialize",
    "perceiver_io",
]

ACTIVATIONS = ("gelu", "gelu_tanh")  # of layers.ACTIVATION_LAYERS: exact and tanh GELU


# -- position encodings --------------------------------------------------------------------------


def linear_positions(index_dims: Sequence[int]) -> torch.Tensor:
    """Positions in ``[-1, 1]`` on every axis: float32 ``[prod(index_dims), d]``, row-major."""
    axes = [torch.linspace(-1.0, 1.0, int(n)) for n in index_dims]
    grid = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(grid, dim=-1).reshape(-1, len(index_dims))


def fourier_features(
    index_dims: int | Sequence[int],
    num_bands: int,
    *,
    max_resolution: int | Sequence[int] | None = None,
    concat_pos: bool = True,
    sine_only: bool = False,
) -> torch.Tensor:
    """Perceiver's Fourier position features of a grid.

    Positions ``x`` in ``[-1, 1]`` on every axis (``linspace``), then per axis the
    frequencies ``f = linspace(1, res / 2, num_bands)`` (``res`` the axis's maximum resolution,
    whose Nyquist frequency is ``res / 2``) and the features ``[x, sin(pi f x), cos(pi f x)]``:
    the positions first (``concat_pos``), then every sine (axis-major, band-minor), then every
    cosine (omitted with ``sine_only``).

    Args:
        index_dims: the grid, e.g. ``(224, 224)`` or ``(16, 56, 56)``.
        num_bands: bands per axis, ``K >= 1``.
        max_resolution: per axis (default ``index_dims``).
        concat_pos: prepend the raw positions.
        sine_only: sines only.

    Returns:
        float32 ``[prod(index_dims), C]`` with ``C = d * K * (1 if sine_only else 2) + (d if
        concat_pos else 0)``.

    Example:
        >>> fourier_features((4, 6), 3).shape       # 2 + 2 * 3 * 2 channels
        torch.Size([24, 14])
    """
    dims = as_int_tuple(
        "index_dims", index_dims, 1 if isinstance(index_dims, int) else len(index_dims)
    )
    k = check_int("num_bands", num_bands, minimum=1)
    res = (
        dims
        if max_resolution is None
        else as_int_tuple("max_resolution", max_resolution, len(dims))
    )
    pos = linear_positions(dims)  # N, d
    return _fourier(pos, k, res, concat_pos, sine_only)


def _fourier(
    pos: torch.Tensor, num_bands: int, res: Sequence[int], concat_pos: bool, sine_only: bool
) -> torch.Tensor:
    freq = torch.stack([torch.linspace(1.0, r / 2, num_bands) for r in res])  # d, K
    per = (pos[:, :, None] * freq[None]).reshape(pos.shape[0], -1)  # N, d*K
    feats = (
        [torch.sin(math.pi * per)]
        if sine_only
        else [torch.sin(math.pi * per), torch.cos(math.pi * per)]
    )
    return torch.cat(([pos] if concat_pos else []) + feats, dim=-1)


class PositionEncoding(nn.Module):
    """Fourier (fixed) or trainable position encodings of a fixed grid, optionally projected.

    Args:
        kind: ``"fourier"`` or ``"trainable"``.
        index_dims: the grid.
        num_channels: channels of a trainable encoding.
        num_bands: of a Fourier encoding (see
            :func:`fourier_features`).
        max_resolution: of a Fourier encoding (see
            :func:`fourier_features`).
        concat_pos: of a Fourier encoding (see
            :func:`fourier_features`).
        sine_only: of a Fourier encoding (see
            :func:`fourier_features`).
        project_pos_dim: project to this width with a linear layer (None: no projection).

    Shape:
        ``forward(batch, positions=None) -> [B, L, C]``; ``positions`` (int64 ``[M]`` or
        ``[B, M]``) selects rows of the grid.
    """

    def __init__(
        self,
        kind: str,
        index_dims: int | Sequence[int],
        *,
        num_channels: int | None = None,
        num_bands: int = 64,
        max_resolution: Sequence[int] | None = None,
        concat_pos: bool = True,
        sine_only: bool = False,
        project_pos_dim: int | None = None,
    ) -> None:
        super().__init__()
        dims = as_int_tuple(
            "index_dims", index_dims, 1 if isinstance(index_dims, int) else len(index_dims)
        )
        self.kind, self.index_dims = kind, dims
        if kind == "fourier":
            table = fourier_features(
                dims,
                num_bands,
                max_resolution=max_resolution,
                concat_pos=concat_pos,
                sine_only=sine_only,
            )
            self.register_buffer("table", table, persistent=False)  # derived
            width = table.shape[1]
        elif kind == "trainable":
            width = check_int("num_channels", num_channels, minimum=1)
            self.position_embeddings = nn.Parameter(torch.randn(math.prod(dims), width) * 0.02)
        else:
            raise invalid("position_encoding", "'fourier' or 'trainable'", kind)
        self.projection = None if project_pos_dim is None else nn.Linear(width, project_pos_dim)
        self.num_channels = width if project_pos_dim is None else int(project_pos_dim)

    @property
    def length(self) -> int:
        """Positions in the grid."""
        return math.prod(self.index_dims)

    def shared(self) -> torch.Tensor:
        """The (projected) encodings of the whole grid, ``[L, C]``: the same for every sample."""
        table = self.table if self.kind == "fourier" else self.position_embeddings  # L, C
        return table if self.projection is None else self.projection(table)

    def forward(self, batch: int, positions: torch.Tensor | None = None) -> torch.Tensor:
        pos = self.shared()[None].expand(batch, -1, -1)  # B, L, C
        return pos if positions is None else gather_visible(pos, positions)


# -- inputs with a batch-shared position table ---------------------------------------------------


@dataclass(frozen=True, eq=False)
class ConcatInputs:
    """Preprocessed inputs whose trailing channels are one table shared by the batch, kept apart.

    Stands for the array ``cat([features, table broadcast over the batch], -1)`` of shape
    ``[B, M, c + P]`` without building it. Perceiver IO's image and audio pre-processors
    concatenate the same position encodings to every sample, so most channels are the same for
    every sample (258 of 261 for ImageNet pixels with 64-band Fourier positions). The encoder's
    cross-attention takes this form as it is (:func:`concat_cross_attention`) and handles the
    table once per step rather than once per sample; whatever needs the array calls
    :meth:`materialize`.

    Attributes:
        features: ``[B, M, c]`` per-sample channels.
        table: ``[M, P]`` channels shared by every sample (used in ``features``' dtype).

    Example:
        >>> x = ConcatInputs(torch.zeros(2, 5, 3), torch.ones(5, 4))
        >>> x.shape, x.materialize().shape
        (torch.Size([2, 5, 7]), torch.Size([2, 5, 7]))
    """

    features: torch.Tensor
    table: torch.Tensor

    def __post_init__(self) -> None:
        f, t = self.features, self.table
        if not isinstance(f, torch.Tensor) or f.dim() != 3:
            raise invalid("features", "a tensor [B, M, c]", getattr(f, "shape", f))
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != f.shape[1]:
            raise invalid("table", f"a tensor [{f.shape[1]}, P] (one row per input)", t.shape)

    @property
    def shape(self) -> torch.Size:
        """``[B, M, c + P]``, the shape of the array this stands for."""
        b, m, c = self.features.shape
        return torch.Size((b, m, c + self.table.shape[1]))

    def materialize(self) -> torch.Tensor:
        """The array ``[B, M, c + P]`` (``features`` then ``table`` on every sample)."""
        f = self.features
        t = self.table.to(f.dtype)[None].expand(f.shape[0], -1, -1)  # B, M, P
        return torch.cat([f, t], dim=-1)


def materialize(inputs: torch.Tensor | ConcatInputs) -> torch.Tensor:
    """The array of preprocessed inputs: a tensor as it is, a :class:`ConcatInputs` built."""
    return inputs.materialize() if isinstance(inputs, ConcatInputs) else inputs


def _per_token_moments(inputs: ConcatInputs, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm's per-token mean and ``1 / sqrt(var + eps)`` of the concatenated channels,
    each ``[B, M]``, from the features and the table's per-row moments (never the array)."""
    p = inputs.features
    t = inputs.table.to(p.dtype)  # M, P
    width_t = t.shape[1]
    width = p.shape[-1] + width_t
    t_sum = t.sum(-1)  # M
    t_mean = t_sum / width_t
    t_sq = (t - t_mean[:, None]).square().sum(-1)  # M: centred, so no cancellation below
    mu = (p.sum(-1) + t_sum) / width  # B, M
    # sum over the table of (t - mu)^2 = sum (t - t_mean)^2 + P (t_mean - mu)^2
    var = ((p - mu[..., None]).square().sum(-1) + t_sq + width_t * (t_mean - mu).square()) / width
    return mu, torch.rsqrt(var + eps)


def concat_cross_attention(
    attn: CrossAttention,
    norm: nn.LayerNorm,
    queries: torch.Tensor,
    inputs: ConcatInputs,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """``attn(queries, norm(inputs.materialize()), attn_mask)``, without building the inputs.

    Write ``x = [p, t]`` for one input token (``p`` its features, ``t`` its table row), ``mu``
    and ``s = 1 / sigma`` for its LayerNorm statistics, ``gamma``, ``beta`` for the norm's
    weights and ``P`` for the attention probabilities of one head. Then

    * the keys ``LN(x) W_k^T + b_k = s * (p A_p^T + t A_t^T - mu W_k gamma) + (W_k beta + b_k)``
      with ``A = W_k diag(gamma)``: the table's share ``t A_t^T`` is one ``[M, P] x [P, d_k]``
      product per call, not one per sample;
    * the values are never built: the rows of ``P`` sum to one (``R``, the row sums, when a
      mask or dropout is applied), so ``P V = (sum_m P_m s_m (x_m - mu_m) * gamma + R beta)
      W_v^T + R b_v``, and the weighted sum over ``m`` is ``(P diag(s)) [p, t]`` minus
      ``(P diag(s)) mu``: one ``[B h N, M] x [M, P]`` product with the shared table (the
      table needs no gradient when it is fixed), a small one with the features.

    The per-token statistics come from the features and the table's row moments
    (:func:`_per_token_moments`). Outputs equal the materialised path within float rounding,
    gradients too (every step is a plain torch op).

    Args:
        attn: the attention (its ``q``, ``k``, ``v``, ``proj`` and heads).
        norm: the LayerNorm of the key/value inputs (``c + P`` channels).
        queries: ``[B, N, q_dim]``, already normed.
        inputs: the key/value inputs.
        attn_mask: broadcast to ``[B, h, N, M]``; bool (True = may attend) or additive float,
            as for :func:`~torch.nn.functional.scaled_dot_product_attention` (a query that may
            attend to nothing gets zeros, as there).
        dropout_p: dropout on the attention probabilities.

    Returns:
        ``[B, N, out_dim]``.
    """
    p = inputs.features  # B, M, c
    t = inputs.table.to(p.dtype)  # M, P
    b, m, c = p.shape
    n = queries.shape[1]
    heads = attn.num_heads
    width = c + t.shape[1]
    gamma = norm.weight if norm.weight is not None else p.new_ones(width)
    beta = norm.bias if norm.bias is not None else p.new_zeros(width)
    mu, s = _per_token_moments(inputs, norm.eps)  # B, M each

    # keys: s * ([p, mu] [A_p, -W_k gamma]^T + t A_t^T) + (W_k beta + b_k)
    w_k = attn.k.weight  # d_k, C
    a_k = w_k * gamma  # d_k, C
    k_bias = w_k @ beta if attn.k.bias is None else torch.addmv(attn.k.bias, w_k, beta)
    feat_mu = torch.cat([p, mu[..., None]], dim=-1)  # B, M, c + 1
    a_feat = torch.cat([a_k[:, :c], -a_k.sum(-1, keepdim=True)], dim=1)  # d_k, c + 1
    keys = torch.baddbmm(t @ a_k[:, c:].T, feat_mu, a_feat.T.expand(b, -1, -1))  # B, M, d_k
    keys = torch.addcmul(k_bias, keys, s[..., None])  # B, M, d_k
    d_qk = keys.shape[-1] // heads
    k = keys.view(b, m, heads, d_qk).transpose(1, 2)  # B, h, M, d
    q = attn.q(queries) * d_qk**-0.5
    q = q.view(b, n, heads, d_qk).transpose(1, 2)  # B, h, N, d

    scores = q @ k.transpose(-1, -2)  # B, h, N, M
    rows = None  # the probabilities' row sums, where they are not all one
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    probs = torch.softmax(scores, dim=-1)
    if attn_mask is not None:  # a query that may attend to nothing: zeros (SDPA's choice)
        probs = probs.nan_to_num(0.0)
    if dropout_p > 0.0:
        probs = torch.nn.functional.dropout(probs, dropout_p, training=True)
    if attn_mask is not None or dropout_p > 0.0:
        rows = probs.sum(-1, keepdim=True)  # B, h, N, 1

    # values: (P diag(s)) [p, t] - (P diag(s)) mu, times gamma, plus R beta, through W_v
    weights = probs * s[:, None, None, :]  # B, h, N, M
    small = weights @ feat_mu[:, None]  # B, h, N, c + 1
    big = (weights.reshape(-1, m) @ t).view(b, heads, n, -1)  # B, h, N, P
    centred = torch.cat([small[..., :c], big], dim=-1) - small[..., c:]  # B, h, N, C
    if rows is None:
        mixed = torch.addcmul(beta, centred, gamma)  # B, h, N, C
    else:
        mixed = torch.addcmul(rows * beta, centred, gamma)
    w_v = attn.v.weight  # d_v, C
    d_v = w_v.shape[0] // heads
    out = mixed @ w_v.view(heads, d_v, width).transpose(1, 2)  # B, h, N, d_v
    if attn.v.bias is not None:
        v_bias = attn.v.bias.view(heads, 1, d_v)
        out = out + (v_bias if rows is None else rows * v_bias)
    return attn.proj(out.transpose(1, 2).reshape(b, n, heads * d_v))  # B, N, out_dim


# -- attention -----------------------------------------------------------------------------------


class PerceiverAttention(nn.Module):
    """Perceiver IO's attention layer (cross- or self-attention), with its MLP.

    ``y = attend(norm_q(x), norm_kv(inputs)) [+ x]``, then ``y + mlp(norm_mlp(y))``.

    Args:
        q_dim: width of the queries ``x``.
        kv_dim: width of the key/value inputs; None for self-attention (keys and values are
            the normed queries).
        num_heads: heads.
        qk_channels: query/key width; default for cross-attention the query side
            (``shape_for_attention="q"``) or the key/value side (``"kv"``), for
            self-attention ``q_dim``.
        v_channels: value width, default ``qk_channels``.
        shape_for_attention: ``"kv"`` or ``"q"`` (see ``qk_channels``).
        use_query_residual: add the queries to the attention output.
        widening_factor: MLP hidden width over the output width.
        dropout: dropout on the attention weights.
        activation: ``"gelu"`` (exact) or ``"gelu_tanh"``.
        out_dim: the attention output width (cross-attention: ``q_dim``; self-attention:
            ``v_channels``, as Perceiver IO).

    Shape:
        ``forward(x [B, N, q_dim], inputs [B, M, kv_dim] or None, attn_mask=None) -> [B, N,
        out_dim]``; ``attn_mask`` bool broadcast to ``[B, h, N, M]``, True = may attend.
        Cross-attention also takes the inputs as a :class:`ConcatInputs` (then through
        :func:`concat_cross_attention`, the same function).
    """

    def __init__(
        self,
        q_dim: int,
        kv_dim: int | None = None,
        *,
        num_heads: int = 1,
        qk_channels: int | None = None,
        v_channels: int | None = None,
        shape_for_attention: str = "kv",
        use_query_residual: bool = True,
        widening_factor: int = 1,
        dropout: float = 0.0,
        activation: str = "gelu",
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        self._add_layers(
            q_dim,
            kv_dim,
            num_heads=num_heads,
            qk_channels=qk_channels,
            v_channels=v_channels,
            shape_for_attention=shape_for_attention,
            use_query_residual=use_query_residual,
            widening_factor=check_int("widening_factor", widening_factor, minimum=1),
            dropout=dropout,
            act_layer=activation_layer(activation, choices=ACTIVATIONS),
            out_dim=out_dim,
        )

    def _add_layers(
        self,
        q_dim: int,
        kv_dim: int | None,
        *,
        num_heads: int,
        qk_channels: int | None,
        v_channels: int | None,
        shape_for_attention: str,
        use_query_residual: bool,
        widening_factor: int,
        dropout: float,
        act_layer: type[nn.Module],
        out_dim: int | None,
        init_linear: Callable[[nn.Linear], None] | None = None,
    ) -> None:
        """Build the layers in their order: ``norm_q``, ``norm_kv``, ``attn``, ``norm_mlp``,
        ``mlp``. ``init_linear`` re-initialises every linear map right after the module that
        holds it is built (HiP's Haiku initialisation: the same draws in the same order)."""
        cross = kv_dim is not None
        if shape_for_attention not in ("q", "kv"):
            raise invalid("shape_for_attention", "'q' or 'kv'", shape_for_attention)
        if qk_channels is None:
            qk_channels = kv_dim if cross and shape_for_attention == "kv" else q_dim
        if v_channels is None:
            v_channels = qk_channels
        out = out_dim if out_dim is not None else (q_dim if cross else v_channels)
        self.cross = cross
        self.norm_q = nn.LayerNorm(q_dim)
        self.norm_kv = nn.LayerNorm(kv_dim) if cross else None
        self.attn = CrossAttention(
            q_dim,
            kv_dim if cross else q_dim,
            num_heads,
            qk_channels=qk_channels,
            v_channels=v_channels,
            out_dim=out,
            attn_drop=dropout,
        )
        if init_linear is not None:
            for linear in (self.attn.q, self.attn.k, self.attn.v, self.attn.proj):
                init_linear(linear)
        self.use_query_residual = bool(use_query_residual)
        self.norm_mlp = nn.LayerNorm(out)
        self.mlp = Mlp(out, widening_factor * out, act_layer=act_layer)
        if init_linear is not None:
            init_linear(self.mlp.fc1)
            init_linear(self.mlp.fc2)

    def attention(
        self,
        x: torch.Tensor,
        inputs: torch.Tensor | ConcatInputs | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The attention branch alone: ``attend(norm_q(x), norm_kv(inputs))``.

        ``x [*lead, N, q_dim]`` and ``inputs [*lead, M, kv_dim]`` may have leading axes
        besides the batch (HiP's groups): they are flattened for the attention only, so
        ``attn_mask`` broadcasts to ``[prod(lead), h, N, M]``. Returns ``[*lead, N,
        out_dim]``; for self-attention the keys/values are the normed queries.
        """
        q = self.norm_q(x)
        if not self.cross:
            kv = q
        elif isinstance(inputs, ConcatInputs):  # the shared table normed and projected once
            drop = self.attn.attn_drop if self.training else 0.0
            return concat_cross_attention(self.attn, self.norm_kv, q, inputs, attn_mask, drop)
        elif inputs is None:
            raise invalid("inputs", "a key/value tensor for cross-attention", None)
        else:
            kv = self.norm_kv(inputs)
        if q.dim() == 3:
            return self.attn(q, kv, attn_mask)
        lead = q.shape[:-2]
        y = self.attn(q.reshape(-1, *q.shape[-2:]), kv.reshape(-1, *kv.shape[-2:]), attn_mask)
        return y.reshape(*lead, *y.shape[-2:])  # *lead, N, out_dim

    def output(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The rest of the layer after :meth:`attention`: ``y [+ x]`` (the query residual),
        then that plus ``mlp(norm_mlp(.))``."""
        if self.use_query_residual:
            y = y + x
        return y + self.mlp(self.norm_mlp(y))

    def forward(
        self,
        x: torch.Tensor,
        inputs: torch.Tensor | ConcatInputs | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.output(self.attention(x, inputs, attn_mask), x)


class PerceiverEncoder(nn.Module):
    """Learned latents, one cross-attention from the inputs, then ``num_blocks`` repeats of a
    block of ``num_self_attends_per_block`` self-attention layers (weights shared by every
    repeat).

    Args:
        num_latents: the latent array ``[N, D]``.
        d_latents: the latent array ``[N, D]``.
        input_channels: width of the preprocessed inputs.
        num_blocks: repeats of the self-attention block.
        num_self_attends_per_block: layers per block.
        num_cross_attention_heads: heads.
        num_self_attention_heads: heads.
        qk_channels: attention widths (None: Perceiver IO's defaults).
        v_channels: attention widths (None: Perceiver IO's defaults).
        cross_attention_shape_for_attention: ``"kv"`` or ``"q"``.
        cross_attention_widening_factor: MLP widths.
        self_attention_widening_factor: MLP widths.
        use_query_residual: the cross-attention's query residual.
        dropout: attention dropout.
        activation: ``"gelu"`` or ``"gelu_tanh"``.

    Shape:
        ``forward(inputs [B, M, C], input_mask=None) -> [B, N, D]``; ``input_mask`` bool
        ``[B, M]``, True = attend (padding False). ``inputs`` may be a :class:`ConcatInputs`
        (what the image and audio pre-processors hand :class:`PerceiverIO`): the same result,
        the shared table normed and projected once (:func:`concat_cross_attention`).
    """

    def __init__(
        self,
        num_latents: int,
        d_latents: int,
        input_channels: int,
        *,
        num_blocks: int = 1,
        num_self_attends_per_block: int = 1,
        num_cross_attention_heads: int = 1,
        num_self_attention_heads: int = 1,
        qk_channels: int | None = None,
        v_channels: int | None = None,
        cross_attention_shape_for_attention: str = "kv",
        cross_attention_widening_factor: int = 1,
        self_attention_widening_factor: int = 1,
        use_query_residual: bool = True,
        dropout: float = 0.0,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.num_blocks = check_int("num_blocks", num_blocks, minimum=1)
        self.latents = nn.Parameter(
            torch.randn(
                check_int("num_latents", num_latents, minimum=1),
                check_int("d_latents", d_latents, minimum=1),
            )
            * 0.02
        )
        self.input_channels = check_int("input_channels", input_channels, minimum=1)
        self.cross_attention = PerceiverAttention(
            d_latents,
            input_channels,
            num_heads=num_cross_attention_heads,
            qk_channels=qk_channels,
            v_channels=v_channels,
            shape_for_attention=cross_attention_shape_for_attention,
            use_query_residual=use_query_residual,
            widening_factor=cross_attention_widening_factor,
            dropout=dropout,
            activation=activation,
        )
        self.self_attends = nn.ModuleList(
            PerceiverAttention(
                d_latents,
                num_heads=num_self_attention_heads,
                qk_channels=qk_channels,
                v_channels=v_channels,
                widening_factor=self_attention_widening_factor,
                dropout=dropout,
                activation=activation,
            )
            for _ in range(
                check_int("num_self_attends_per_block", num_self_attends_per_block, minimum=1)
            )
        )

    def forward(
        self, inputs: torch.Tensor | ConcatInputs, input_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if len(inputs.shape) != 3 or inputs.shape[-1] != self.input_channels:
            raise invalid("inputs", f"a tensor [B, M, {self.input_channels}]", tuple(inputs.shape))
        b = inputs.shape[0]
        mask = None if input_mask is None else input_mask[:, None, None, :]  # B, 1, 1, M
        z = self.cross_attention(self.latents[None].expand(b, -1, -1), inputs, mask)
        for _ in range(self.num_blocks):
            for layer in self.self_attends:
                z = layer(z)
        return z


# -- decoders ------------------------------------------------------------------------------------


class BasicDecoder(nn.Module):
    """Cross-attention from output queries to the latents, then an optional final projection.

    The queries are position encodings of ``output_index_dims`` (trainable or Fourier),
    optionally concatenated with the preprocessed inputs (``concat_preprocessed_input``); a
    subset of the query positions can be decoded (``positions``), e.g. at train time.

    Args:
        latent_dim: width of the latents.
        output_num_channels: output width (with ``final_project``).
        output_index_dims: the output grid, e.g. ``1`` (a class) or ``(16, 224, 224)``.
        position_encoding: ``"trainable"``, ``"fourier"`` or ``"none"`` (queries are given to
            :meth:`forward` directly).
        num_channels: width of the queries (the cross-attention's ``q_dim``).
        num_pos_channels: width of trainable positions (default ``num_channels``).
        num_bands: of Fourier positions.
        max_resolution: of Fourier positions.
        concat_pos: of Fourier positions.
        sine_only: of Fourier positions.
        project_pos_dim: project the positions to this width (None: no projection).
        concat_preprocessed_input: concatenate the preprocessed inputs (without positions) to
            the queries; ``num_channels`` is then the concatenated width.
        qk_channels: of the
            cross-attention.
        v_channels: of the
            cross-attention.
        num_heads: of the
            cross-attention.
        widening_factor: of the
            cross-attention.
        use_query_residual: of the
            cross-attention.
        final_project: a linear map to ``output_num_channels``.
        position_encoding_only: build the queries only (a multimodal decoder's modality).
        activation: ``"gelu"`` or ``"gelu_tanh"``.
    """

    def __init__(
        self,
        latent_dim: int,
        output_num_channels: int,
        *,
        output_index_dims: int | Sequence[int] = 1,
        position_encoding: str = "trainable",
        num_channels: int = 128,
        num_pos_channels: int | None = None,
        num_bands: int = 64,
        max_resolution: Sequence[int] | None = None,
        concat_pos: bool = True,
        sine_only: bool = False,
        project_pos_dim: int | None = None,
        concat_preprocessed_input: bool = False,
        qk_channels: int | None = None,
        v_channels: int | None = None,
        num_heads: int = 1,
        widening_factor: int = 1,
        use_query_residual: bool = False,
        final_project: bool = True,
        position_encoding_only: bool = False,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.output_index_dims = as_int_tuple(
            "output_index_dims",
            output_index_dims,
            1 if isinstance(output_index_dims, int) else len(output_index_dims),
        )
        self.concat_preprocessed_input = bool(concat_preprocessed_input)
        self.position_encoding_only = bool(position_encoding_only)
        if position_encoding == "none":
            self.positions = None
        else:
            self.positions = PositionEncoding(
                position_encoding,
                self.output_index_dims,
                num_channels=num_pos_channels or num_channels,
                num_bands=num_bands,
                max_resolution=max_resolution,
                concat_pos=concat_pos,
                sine_only=sine_only,
                project_pos_dim=project_pos_dim,
            )
        self.num_channels = int(num_channels)
        self.output_num_channels = int(output_num_channels)
        if not self.position_encoding_only:
            self.cross_attention = PerceiverAttention(
                num_channels,
                latent_dim,
                num_heads=num_heads,
                qk_channels=qk_channels,
                v_channels=v_channels,
                use_query_residual=use_query_residual,
                widening_factor=widening_factor,
                activation=activation,
            )
            self.final_layer = (
                nn.Linear(num_channels, output_num_channels) if final_project else nn.Identity()
            )

    @property
    def num_query_channels(self) -> int:
        """Width of the queries this decoder builds."""
        if self.positions is None:
            return self.num_channels
        return self.positions.num_channels

    def queries(
        self,
        batch: int,
        inputs_without_pos: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The output queries ``[B, L or M, C]``: position encodings (at ``positions``, int64
        ``[M]`` or ``[B, M]``, if given), optionally with the preprocessed inputs."""
        if self.positions is None:
            raise invalid("position_encoding", "a decoder that builds its queries", "none")
        q = self.positions(batch, positions)
        if self.concat_preprocessed_input:
            if inputs_without_pos is None:
                raise invalid("inputs_without_pos", "the preprocessed inputs", None)
            extra = (
                inputs_without_pos
                if positions is None
                else gather_visible(inputs_without_pos, positions)
            )
            q = torch.cat([extra, q], dim=-1)
        return q

    def forward(self, latents: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """``[B, N, D]`` latents, ``[B, M, C]`` queries -> ``[B, M, output_num_channels]``."""
        if self.position_encoding_only:
            raise invalid(
                "decoder", "a decoder with a cross-attention", "position_encoding_only=True"
            )
        if queries.dim() != 3 or queries.shape[-1] != self.num_channels:
            raise invalid("queries", f"a tensor [B, M, {self.num_channels}]", tuple(queries.shape))
        return self.final_layer(self.cross_attention(queries, latents))


class ClassificationDecoder(BasicDecoder):
    """One trainable query decoding the logits: ``forward(latents) -> [B, num_classes]``."""

    def __init__(self, latent_dim: int, num_classes: int, **kwargs: Any) -> None:
        kwargs.setdefault("position_encoding", "trainable")
        kwargs.setdefault("num_channels", latent_dim)
        super().__init__(latent_dim, num_classes, output_index_dims=1, **kwargs)

    def forward(self, latents: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        if queries is None:
            queries = self.queries(latents.shape[0])
        return super().forward(latents, queries)[:, 0]


class MultimodalDecoder(nn.Module):
    """Each modality's queries, padded to one width with a learned per-modality vector and
    concatenated (modalities in sorted order), decoded by one shared cross-attention.

    Args:
        latent_dim: width of the latents.
        modalities: modality name -> a :class:`BasicDecoder` (``position_encoding_only``: it
            only builds that modality's queries).
        output_num_channels: output width of the shared decoder.
        min_padding_size: padding channels at least (the common width is the widest
            modality's queries plus this).
        **kwargs: the shared :class:`BasicDecoder`'s cross-attention options.
    """

    def __init__(
        self,
        latent_dim: int,
        modalities: Mapping[str, BasicDecoder],
        output_num_channels: int,
        *,
        min_padding_size: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not modalities:
            raise invalid("modalities", "at least one modality decoder", modalities)
        self.modalities = nn.ModuleDict(dict(sorted(modalities.items())))
        width = max(d.num_query_channels for d in self.modalities.values()) + int(min_padding_size)
        self.num_query_channels = width
        self.padding = nn.ParameterDict(
            {
                name: nn.Parameter(torch.randn(1, width - d.num_query_channels) * 0.02)
                for name, d in self.modalities.items()
            }
        )
        self.decoder = BasicDecoder(
            latent_dim, output_num_channels, position_encoding="none", num_channels=width, **kwargs
        )

    def queries(
        self, batch: int, positions: Mapping[str, torch.Tensor | None] | None = None
    ) -> tuple[torch.Tensor, dict[str, int]]:
        """The padded, concatenated queries ``[B, sum M_m, C]`` and each modality's count."""
        positions = positions or {}
        unknown = set(positions) - set(self.modalities)
        if unknown:
            raise invalid(
                "positions", f"modalities among {sorted(self.modalities)}", sorted(unknown)
            )
        parts, sizes = [], {}
        for name, dec in self.modalities.items():
            q = dec.queries(batch, positions=positions.get(name))
            pad = self.padding[name].expand(batch, q.shape[1], -1)
            parts.append(torch.cat([q, pad], dim=-1))
            sizes[name] = q.shape[1]
        return torch.cat(parts, dim=1), sizes

    def forward(
        self, latents: torch.Tensor, positions: Mapping[str, torch.Tensor | None] | None = None
    ) -> dict[str, torch.Tensor]:
        """Decode every modality: ``{name: [B, M_m, output_num_channels]}``."""
        queries, sizes = self.queries(latents.shape[0], positions)
        out = self.decoder(latents, queries)
        return dict(zip(sizes, out.split(list(sizes.values()), dim=1), strict=True))


# -- pre-processors ------------------------------------------------------------------------------


def space_to_depth(x: torch.Tensor, spatial: int, temporal: int = 1) -> torch.Tensor:
    """Patches as channels, channels last: images ``[B, C, H, W]`` -> ``[B, H/s, W/s,
    s*s*C]``; video ``[B, T, C, H, W]`` -> ``[B, T/t, H/s, W/s, t*s*s*C]`` (pixel order
    ``(t, p, q, c)``)."""
    if x.dim() == 4:
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // spatial, spatial, w // spatial, spatial).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, h // spatial, w // spatial, spatial * spatial * c)
    if x.dim() == 5:
        b, t, c, h, w = x.shape
        x = x.reshape(b, t // temporal, temporal, c, h // spatial, spatial, w // spatial, spatial)
        x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)  # B, T', H', W', t, s, s, C
        return x.reshape(b, t // temporal, h // spatial, w // spatial, temporal * spatial**2 * c)
    raise invalid("inputs", "images [B, C, H, W] or video [B, T, C, H, W]", tuple(x.shape))


def _attach_positions(
    y: torch.Tensor, table: torch.Tensor, mode: str
) -> torch.Tensor | ConcatInputs:
    """``[B, M, C]`` features with the batch-shared ``[M, P]`` positions: concatenated
    (``"concat"``, kept apart as a :class:`ConcatInputs`) or added (a tensor)."""
    return ConcatInputs(y, table) if mode == "concat" else y + table.to(y.dtype)


class ImagePreprocessor(nn.Module):
    """Images (or video) to Perceiver inputs: patches, pixels or a 1x1 convolution, with
    Fourier or trainable positions, concatenated or added.

    Args:
        input_shape: ``(C, H, W)`` or ``(T, C, H, W)`` of one input.
        prep_type: ``"patches"`` (space to depth), ``"pixels"`` or ``"conv1x1"``.
        spatial_downsample: patch size / stride.
        temporal_downsample: patch size / stride.
        position_encoding: ``"fourier"`` or ``"trainable"``.
        out_channels: channels of the 1x1 convolution (and of ``conv_after_patching``).
        conv_after_patching: a linear map of every patch to ``out_channels``.
        concat_or_add_pos: ``"concat"`` or ``"add"``.
        project_pos_dim: project the positions to this width.
        num_bands: of Fourier positions (the grid is
            the downsampled one; ``max_resolution`` defaults to it).
        max_resolution: of Fourier positions (the grid is
            the downsampled one; ``max_resolution`` defaults to it).
        concat_pos: of Fourier positions (the grid is
            the downsampled one; ``max_resolution`` defaults to it).
        sine_only: of Fourier positions (the grid is
            the downsampled one; ``max_resolution`` defaults to it).
        num_pos_channels: width of trainable positions (default ``out_channels``).

    Shape:
        ``forward(x) -> (inputs [B, M, num_channels], inputs_without_pos [B, M, C'])``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        *,
        prep_type: str = "patches",
        spatial_downsample: int = 4,
        temporal_downsample: int = 1,
        position_encoding: str = "fourier",
        out_channels: int = 64,
        conv_after_patching: bool = False,
        concat_or_add_pos: str = "concat",
        project_pos_dim: int | None = None,
        num_bands: int = 64,
        max_resolution: Sequence[int] | None = None,
        concat_pos: bool = True,
        sine_only: bool = False,
        num_pos_channels: int | None = None,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (3, 4):
            raise invalid("input_shape", "(C, H, W) or (T, C, H, W)", input_shape)
        if prep_type not in ("patches", "pixels", "conv1x1"):
            raise invalid("prep_type", "'patches', 'pixels' or 'conv1x1'", prep_type)
        if concat_or_add_pos not in ("concat", "add"):
            raise invalid("concat_or_add_pos", "'concat' or 'add'", concat_or_add_pos)
        s = check_int("spatial_downsample", spatial_downsample, minimum=1)
        t = check_int("temporal_downsample", temporal_downsample, minimum=1)
        video = len(shape) == 4
        chans, *spatial = shape[-3:]
        frames = shape[0] if video else 1
        if any(n % s for n in spatial) or frames % t:
            raise invalid(
                "input_shape", f"sizes divisible by the downsampling ({t}, {s}, {s})", shape
            )
        if prep_type == "conv1x1" and (video or t != 1):
            raise invalid(
                "prep_type", "'patches' or 'pixels' for video ('conv1x1' is 2-D)", prep_type
            )
        grid = tuple(n // s for n in spatial)
        self.index_dims = ((frames // t,) if video else ()) + grid
        self.input_shape, self.prep_type, self.concat_or_add_pos = (
            shape,
            prep_type,
            concat_or_add_pos,
        )
        self.spatial_downsample, self.temporal_downsample = s, t
        if prep_type == "conv1x1":
            self.convnet_1x1 = nn.Conv2d(chans, out_channels, 1, stride=s)
            feat = out_channels
        elif prep_type == "patches":
            feat = chans * s * s * (t if video else 1)
        else:
            feat = chans
        self.conv_after_patches = None
        if conv_after_patching:
            self.conv_after_patches = nn.Linear(feat, out_channels)
            feat = out_channels
        self.positions = PositionEncoding(
            position_encoding,
            self.index_dims,
            num_channels=num_pos_channels or out_channels,
            num_bands=num_bands,
            max_resolution=max_resolution,
            concat_pos=concat_pos,
            sine_only=sine_only,
            project_pos_dim=project_pos_dim,
        )
        pos = self.positions.num_channels
        if concat_or_add_pos == "add" and pos != feat:
            raise invalid(
                "project_pos_dim", f"{feat} to add positions to {feat}-channel inputs", pos
            )
        self.feature_channels = feat
        self.num_channels = feat + pos if concat_or_add_pos == "concat" else feat

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, *index_dims, C']`` channels-last features, no positions."""
        expected = f"a float tensor [B, {', '.join(map(str, self.input_shape))}]"
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != self.input_shape:
            raise invalid("inputs", expected, tuple(x.shape) if isinstance(x, torch.Tensor) else x)
        s, t = self.spatial_downsample, self.temporal_downsample
        if self.prep_type == "conv1x1":
            y = self.convnet_1x1(x).permute(0, 2, 3, 1)  # B, H', W', C'
        elif self.prep_type == "patches":
            y = space_to_depth(x, s, t)
        elif x.dim() == 4:  # pixels
            y = x[:, :, ::s, ::s].permute(0, 2, 3, 1)
        else:
            y = x[:, ::t, :, ::s, ::s].permute(0, 1, 3, 4, 2)
        if self.conv_after_patches is not None:
            y = self.conv_after_patches(y)
        return y

    def forward_factored(self, x: torch.Tensor) -> tuple[torch.Tensor | ConcatInputs, torch.Tensor]:
        """:meth:`forward` with concatenated positions kept apart: ``(inputs, inputs_without_pos)``
        where ``inputs`` is a :class:`ConcatInputs` for ``concat_or_add_pos="concat"`` (what
        :class:`PerceiverIO` hands its encoder) and the tensor otherwise."""
        y = self.features(x)
        y = y.reshape(y.shape[0], -1, y.shape[-1])  # B, M, C'
        return _attach_positions(y, self.positions.shared(), self.concat_or_add_pos), y

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, y = self.forward_factored(x)
        return materialize(inputs), y


class AudioPreprocessor(nn.Module):
    """Audio to Perceiver inputs: patches of ``samples_per_patch`` samples, with positions.

    Args:
        num_samples: samples per input.
        samples_per_patch: samples per patch (divides ``num_samples``).
        position_encoding: as :class:`ImagePreprocessor`.
        concat_or_add_pos: as :class:`ImagePreprocessor`.
        project_pos_dim: as :class:`ImagePreprocessor`.
        num_bands: as :class:`ImagePreprocessor`.
        max_resolution: as :class:`ImagePreprocessor`.
        concat_pos: as :class:`ImagePreprocessor`.
        sine_only: as :class:`ImagePreprocessor`.
        num_pos_channels: as :class:`ImagePreprocessor`.

    Shape:
        ``forward(x [B, num_samples] or [B, num_samples, 1]) -> (inputs, inputs_without_pos)``.
    """

    def __init__(
        self,
        num_samples: int,
        samples_per_patch: int = 96,
        *,
        position_encoding: str = "fourier",
        concat_or_add_pos: str = "concat",
        project_pos_dim: int | None = None,
        num_bands: int = 192,
        max_resolution: Sequence[int] | None = None,
        concat_pos: bool = True,
        sine_only: bool = False,
        num_pos_channels: int = 64,
    ) -> None:
        super().__init__()
        n = check_int("num_samples", num_samples, minimum=1)
        p = check_int("samples_per_patch", samples_per_patch, minimum=1)
        if n % p:
            raise invalid("samples_per_patch", f"a divisor of num_samples={n}", p)
        if concat_or_add_pos not in ("concat", "add"):
            raise invalid("concat_or_add_pos", "'concat' or 'add'", concat_or_add_pos)
        self.num_samples, self.samples_per_patch, self.concat_or_add_pos = n, p, concat_or_add_pos
        self.positions = PositionEncoding(
            position_encoding,
            (n // p,),
            num_channels=num_pos_channels,
            num_bands=num_bands,
            max_resolution=max_resolution or (n,),
            concat_pos=concat_pos,
            sine_only=sine_only,
            project_pos_dim=project_pos_dim,
        )
        self.feature_channels = p
        pos = self.positions.num_channels
        self.num_channels = p + pos if concat_or_add_pos == "concat" else p

    def forward_factored(self, x: torch.Tensor) -> tuple[torch.Tensor | ConcatInputs, torch.Tensor]:
        """:meth:`forward` with concatenated positions kept apart (see
        :meth:`ImagePreprocessor.forward_factored`)."""
        if x.dim() == 3 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.dim() != 2 or x.shape[1] != self.num_samples:
            raise invalid("inputs", f"audio [B, {self.num_samples}] (or [B, N, 1])", tuple(x.shape))
        y = x.reshape(x.shape[0], -1, self.samples_per_patch)  # B, M, p
        return _attach_positions(y, self.positions.shared(), self.concat_or_add_pos), y

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, y = self.forward_factored(x)
        return materialize(inputs), y


class MultimodalPreprocessor(nn.Module):
    """Several modalities as one input array: each preprocessed, padded to a common width with
    a learned per-modality vector, optionally replaced by a learned mask token with a
    per-modality probability, and concatenated (modalities in sorted order).

    Args:
        modalities: name -> a preprocessor (``forward(x) -> (inputs, inputs_without_pos)``,
            ``num_channels``); a modality without one is a vector ``[B, C]`` (e.g. a one-hot
            label) used as a single token (give ``vector_channels``).
        vector_channels: name -> channels of the vector modalities.
        mask_probs: name -> probability that a token of the modality is replaced by its mask
            token (sampled per token; at 1.0 the modality is always hidden).
        min_padding_size: padding channels at least.

    Shape:
        ``forward(inputs: {name: tensor}, mask=None) -> (inputs [B, M, C], sizes, without_pos)``;
        ``mask`` (name -> bool ``[B, M_m]``, True = replace) overrides the random draw.
    """

    def __init__(
        self,
        modalities: Mapping[str, nn.Module | None],
        *,
        vector_channels: Mapping[str, int] | None = None,
        mask_probs: Mapping[str, float] | None = None,
        min_padding_size: int = 2,
    ) -> None:
        super().__init__()
        vector_channels = dict(vector_channels or {})
        self.names = sorted(modalities)
        self.modalities = nn.ModuleDict({k: v for k, v in modalities.items() if v is not None})
        widths = {}
        for name in self.names:
            if name in self.modalities:
                widths[name] = int(self.modalities[name].num_channels)
            elif name in vector_channels:
                widths[name] = int(vector_channels[name])
            else:
                raise invalid(
                    "vector_channels", f"the channels of vector modality {name!r}", vector_channels
                )
        self.widths = widths
        self.num_channels = max(widths.values()) + int(min_padding_size)
        self.padding = nn.ParameterDict(
            {
                n: nn.Parameter(torch.randn(1, self.num_channels - w) * 0.02)
                for n, w in widths.items()
            }
        )
        self.mask_probs = dict(mask_probs or {})
        for name, p in self.mask_probs.items():
            if name not in widths or not 0.0 <= p <= 1.0:
                raise invalid("mask_probs", "modality -> probability in [0, 1]", {name: p})
        self.mask = nn.ParameterDict(
            {n: nn.Parameter(torch.randn(1, self.num_channels) * 0.02) for n in self.mask_probs}
        )

    def forward(
        self,
        inputs: Mapping[str, torch.Tensor],
        mask: Mapping[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, int], dict[str, torch.Tensor]]:
        if set(inputs) != set(self.names):
            raise invalid("inputs", f"the modalities {self.names}", sorted(inputs))
        mask = dict(mask or {})
        parts, sizes, without = [], {}, {}
        for name in self.names:
            if name in self.modalities:
                x, raw = self.modalities[name](inputs[name])
            else:
                v = inputs[name]
                if v.dim() != 2 or v.shape[1] != self.widths[name]:
                    raise invalid(f"inputs[{name!r}]", f"[B, {self.widths[name]}]", tuple(v.shape))
                x = raw = v[:, None]  # B, 1, C
            b, m, _ = x.shape
            x = torch.cat([x, self.padding[name].expand(b, m, -1).to(x.dtype)], dim=-1)
            if name in self.mask_probs:
                hide = mask.get(name)
                if hide is None:
                    p = torch.full((b, m), self.mask_probs[name], device=x.device)
                    hide = torch.bernoulli(p, generator=generator).bool()
                x = torch.where(hide[..., None], self.mask[name].to(x.dtype), x)
            parts.append(x)
            sizes[name] = m
            without[name] = raw
        return torch.cat(parts, dim=1), sizes, without


# -- the model -----------------------------------------------------------------------------------


class PerceiverIO(nn.Module):
    """Preprocess, encode, decode, postprocess.

    Args:
        encoder: a :class:`PerceiverEncoder`.
        decoder: a :class:`BasicDecoder` (or :class:`ClassificationDecoder`), or None to stop
            at the latents.
        preprocessor: maps raw inputs to ``(inputs [B, M, C], inputs_without_pos)``; None: the
            inputs are given as ``[B, M, C]``.
        postprocessor: applied to the decoder output.

    Example:
        >>> enc = PerceiverEncoder(8, 16, 22, num_blocks=2)   # 2x2x3 patch + 10 Fourier channels
        >>> model = PerceiverIO(enc, ClassificationDecoder(16, 5),
        ...                     ImagePreprocessor((3, 8, 8), spatial_downsample=2, num_bands=2))
        >>> model(torch.randn(2, 3, 8, 8)).shape, model.encode(torch.randn(2, 3, 8, 8)).shape
        (torch.Size([2, 5]), torch.Size([2, 8, 16]))
    """

    def __init__(
        self,
        encoder: PerceiverEncoder,
        decoder: nn.Module | None = None,
        preprocessor: nn.Module | None = None,
        postprocessor: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (
            preprocessor is not None
            and getattr(preprocessor, "num_channels", None) != encoder.input_channels
        ):
            raise invalid(
                "encoder",
                f"an encoder for {getattr(preprocessor, 'num_channels', '?')}-channel inputs "
                "(the preprocessor's)",
                f"input_channels={encoder.input_channels}",
            )
        self.input_preprocessor = preprocessor
        self.encoder = encoder
        self.decoder = decoder
        self.output_postprocessor = postprocessor

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input (the preprocessor's ``input_shape``; ``(M, C)`` without one)."""
        shape = getattr(self.input_preprocessor, "input_shape", None)
        return tuple(shape) if shape is not None else (-1, self.encoder.input_channels)

    def preprocess(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(inputs [B, M, C], inputs_without_pos)``."""
        x, raw = self._preprocess(inputs)
        return materialize(x), raw

    def _preprocess(self, inputs: Any) -> tuple[torch.Tensor | ConcatInputs, torch.Tensor | None]:
        """:meth:`preprocess` with a shared position table kept apart where the preprocessor
        can (its ``forward_factored``): what the encoder takes."""
        pre = self.input_preprocessor
        if pre is None:
            return inputs, None
        factored = getattr(pre, "forward_factored", None)
        out = pre(inputs) if factored is None else factored(inputs)
        return out[0], out[-1]

    def encode(self, inputs: Any, input_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The latents ``[B, N, D]``."""
        x, _ = self._preprocess(inputs)
        return self.encoder(x, input_mask)

    def forward_features(self, inputs: Any, input_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of the latents, ``[B, D]`` float: what probes read.

        The encoder's output is the latent array ``[B, N, D]`` (:meth:`encode`); its mean over
        the ``N`` latents is the pooled representation of the input. The classification
        decoder (one trainable query cross-attending to the latents, then the linear map to the
        logits) is the family's head (``decoder.*``, made anew when an encoder is fine-tuned),
        so it is no part of the features. Perceiver IO has no norm after its last
        self-attention layer: the mean is of un-normed latents (a k-NN probe L2-normalises
        them, a linear probe batch-normalises them).

        Args:
            inputs: what :meth:`encode` takes (images ``[B, C, H, W]`` for the image models).
            input_mask: as :meth:`encode`.
        """
        return self.encode(inputs, input_mask).mean(dim=1)  # B, N, D -> B, D

    def forward(
        self,
        inputs: Any,
        input_mask: torch.Tensor | None = None,
        query_positions: torch.Tensor | None = None,
    ) -> Any:
        """The decoder's outputs (the latents without a decoder); ``query_positions`` (int64
        ``[M]`` or ``[B, M]``) decodes a subset of the output positions."""
        x, raw = self._preprocess(inputs)
        z = self.encoder(x, input_mask)
        if self.decoder is None:
            return z
        if isinstance(self.decoder, ClassificationDecoder):
            out = self.decoder(z)
        else:
            out = self.decoder(z, self.decoder.queries(z.shape[0], raw, query_positions))
        return out if self.output_postprocessor is None else self.output_postprocessor(out)


# -- named configurations ------------------------------------------------------------------------


@dataclass(frozen=True)
class PerceiverIOConfig:
    """An image-classification Perceiver IO (what :func:`perceiver_io` builds).

    Attributes mirror transformers' ``PerceiverConfig`` names for the encoder
    (``num_latents``, ``d_latents``, ``num_blocks``, ``num_self_attends_per_block``,
    ``num_self_attention_heads``, ``num_cross_attention_heads``, ``qk_channels``,
    ``v_channels``, ``cross_attention_shape_for_attention``, ``self_attention_widening_factor``,
    ``cross_attention_widening_factor``), plus the image preprocessor (``image_size``,
    ``in_chans``, ``prep_type``, ``spatial_downsample``, ``num_bands``) and ``num_classes``.
    """

    image_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    num_latents: int = 512
    d_latents: int = 1024
    num_blocks: int = 8
    num_self_attends_per_block: int = 6
    num_self_attention_heads: int = 8
    num_cross_attention_heads: int = 1
    qk_channels: int | None = None
    v_channels: int | None = None
    cross_attention_shape_for_attention: str = "kv"
    self_attention_widening_factor: int = 1
    cross_attention_widening_factor: int = 1
    prep_type: str = "pixels"
    spatial_downsample: int = 1
    num_bands: int = 64
    activation: str = "gelu"


def perceiver_io(**kwargs: Any) -> PerceiverIO:
    """An image-classification Perceiver IO from :class:`PerceiverIOConfig` fields (the
    registry's entry point): Fourier positions concatenated to the pixels (or patches), the
    encoder, and a classification decoder with one trainable query."""
    cfg = PerceiverIOConfig(**kwargs)
    pre = ImagePreprocessor(
        (cfg.in_chans, cfg.image_size, cfg.image_size),
        prep_type=cfg.prep_type,
        spatial_downsample=cfg.spatial_downsample,
        num_bands=cfg.num_bands,
        max_resolution=(cfg.image_size, cfg.image_size),
    )
    enc = PerceiverEncoder(
        cfg.num_latents,
        cfg.d_latents,
        pre.num_channels,
        num_blocks=cfg.num_blocks,
        num_self_attends_per_block=cfg.num_self_attends_per_block,
        num_cross_attention_heads=cfg.num_cross_attention_heads,
        num_self_attention_heads=cfg.num_self_attention_heads,
        qk_channels=cfg.qk_channels,
        v_channels=cfg.v_channels,
        cross_attention_shape_for_attention=cfg.cross_attention_shape_for_attention,
        cross_attention_widening_factor=cfg.cross_attention_widening_factor,
        self_attention_widening_factor=cfg.self_attention_widening_factor,
        activation=cfg.activation,
    )
    dec = ClassificationDecoder(
        cfg.d_latents, cfg.num_classes, use_query_residual=True, activation=cfg.activation
    )
    model = PerceiverIO(enc, dec, pre)
    model.config = cfg
    return model


# -- transformers ----------------------------------------------------------------------------------


# transformers' names -> ours, applied in order to every key (regular expressions, re.sub)
_TRANSFORMERS_KEYS: tuple[tuple[str, str], ...] = (
    (r"^embeddings\.latents$", "encoder.latents"),
    (r"^decoder\.decoder\.", "decoder."),  # a classification decoder wraps a basic one
    (r"^decoder\.output_position_encodings\.", "decoder.positions."),
    (r"^input_preprocessor\.position_embeddings\.", "input_preprocessor.positions."),
    (r"\.positions_projection\.", ".positions.projection."),
    (r"\.decoding_cross_attention\.", ".cross_attention."),
    (r"\.attention\.self\.layernorm1\.", ".norm_q."),
    (r"\.attention\.self\.layernorm2\.", ".norm_kv."),
    (r"\.attention\.self\.query\.", ".attn.q."),
    (r"\.attention\.self\.key\.", ".attn.k."),
    (r"\.attention\.self\.value\.", ".attn.v."),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"\.layernorm\.", ".norm_mlp."),
    (r"\.mlp\.dense([12])\.", r".mlp.fc\1."),
)


def convert_transformers_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """transformers' ``PerceiverModel`` names -> ours: a pure ``state_dict -> state_dict`` map,
    as timm's ``checkpoint_filter_fn``.

    ``embeddings.latents`` -> ``encoder.latents``; in every ``PerceiverLayer``,
    ``attention.self.{layernorm1, layernorm2, query, key, value}``, ``attention.output.dense``,
    ``layernorm`` and ``mlp.dense{1, 2}`` -> :class:`PerceiverAttention`'s ``norm_q``,
    ``norm_kv``, ``attn.{q, k, v, proj}``, ``norm_mlp`` and ``mlp.fc{1, 2}``; the decoder's
    ``decoding_cross_attention`` and ``output_position_encodings`` -> its ``cross_attention``
    and ``positions`` (a classification decoder's inner ``decoder.`` dropped); a
    preprocessor's ``position_embeddings`` and ``positions_projection`` -> ``positions`` and
    ``positions.projection``. The ``output_postprocessor``, which :func:`from_transformers`
    does not reproduce, is dropped; other names pass unchanged.

    Args:
        state_dict: a transformers ``PerceiverModel``'s ``state_dict()``.

    Returns:
        A new dict with the same tensors under our names.

    Example:
        >>> sorted(convert_transformers_state_dict({
        ...     "embeddings.latents": 0,
        ...     "decoder.decoder.decoding_cross_attention.attention.self.query.weight": 1,
        ... }))
        ['decoder.cross_attention.attn.q.weight', 'encoder.latents']
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith("output_postprocessor."):
            continue
        for pattern, replacement in _TRANSFORMERS_KEYS:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def _layer_options(theirs: Any) -> dict[str, Any]:
    s = theirs.attention.self
    return dict(
        num_heads=s.num_heads,
        qk_channels=s.qk_channels,
        v_channels=s.v_channels,
        use_query_residual=theirs.attention.use_query_residual,
        widening_factor=theirs.mlp.dense1.out_features // theirs.mlp.dense1.in_features,
    )


def _activation_of(config: Any) -> str:
    act = getattr(config, "hidden_act", "gelu")
    if act in ("gelu", "gelu_python"):
        return "gelu"
    if act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return "gelu_tanh"
    raise invalid("model", "a Perceiver with GELU activations", act)


def _position_options(enc: Any, *, trainable_channels: int | None = None) -> dict[str, Any]:
    from transformers.models.perceiver import modeling_perceiver as hf

    if isinstance(enc, hf.PerceiverFourierPositionEncoding):
        return dict(
            position_encoding="fourier",
            num_bands=enc.num_bands,
            max_resolution=tuple(enc.max_resolution),
            concat_pos=enc.concat_pos,
            sine_only=enc.sine_only,
        )
    if isinstance(enc, hf.PerceiverTrainablePositionEncoding):
        return dict(position_encoding="trainable", num_channels=enc._num_channels)
    raise invalid("model", "Fourier or trainable position encodings", type(enc).__name__)


def from_transformers(model: Any) -> PerceiverIO:
    """The :class:`PerceiverIO` equivalent to a transformers ``PerceiverModel``, weights copied.

    Supports the classification and basic decoders (or none), and no preprocessor or the image
    preprocessor with ``prep_type`` ``"patches"`` or ``"conv1x1"`` (``"pixels"`` too at
    ``spatial_downsample=1``), Fourier or trainable positions, concatenated or added, with or
    without a position projection. This is how the released Perceiver IO weights (published in
    transformers' format) load. Outputs equal the model's within float32 rounding (tested at
    1e-5 relative). ``transformers`` is imported here only (the ``[hf]`` extra).

    The architecture is read from the model's config and modules; the weights are its
    ``state_dict()`` through :func:`convert_transformers_state_dict`, loaded strictly.

    Args:
        model: a ``transformers.PerceiverModel`` (or a ``PerceiverFor...`` model, whose
            ``.perceiver`` is used).
    """
    from transformers.models.perceiver import modeling_perceiver as hf

    if hasattr(model, "perceiver"):
        model = model.perceiver
    if not isinstance(model, hf.PerceiverModel):
        raise invalid("model", "a transformers PerceiverModel", type(model).__name__)
    cfg = model.config
    act = _activation_of(cfg)
    pre = None
    theirs_pre = model.input_preprocessor
    if theirs_pre is not None:
        if not isinstance(theirs_pre, hf.PerceiverImagePreprocessor):
            raise invalid("model", "an image preprocessor (or none)", type(theirs_pre).__name__)
        prep = theirs_pre.prep_type
        if prep not in ("patches", "conv1x1", "pixels") or (
            prep == "pixels" and theirs_pre.spatial_downsample != 1
        ):
            raise invalid(
                "model", "prep_type 'patches', 'conv1x1' or 'pixels' at downsample 1", prep
            )
        size = cfg.image_size
        pos = _position_options(theirs_pre.position_embeddings)
        trainable = pos.pop("num_channels", None)
        project = theirs_pre.positions_projection
        pre = ImagePreprocessor(
            (theirs_pre.in_channels, size, size),
            prep_type=prep,
            spatial_downsample=theirs_pre.spatial_downsample,
            out_channels=theirs_pre.out_channels,
            conv_after_patching=theirs_pre.conv_after_patching,
            concat_or_add_pos=theirs_pre.concat_or_add_pos,
            project_pos_dim=project.out_features if isinstance(project, nn.Linear) else None,
            num_pos_channels=trainable,
            **pos,
        )
    input_channels = pre.num_channels if pre is not None else cfg.d_model
    enc = PerceiverEncoder(  # built as transformers builds it: the same width defaults
        cfg.num_latents,
        cfg.d_latents,
        input_channels,
        num_blocks=cfg.num_blocks,
        num_self_attends_per_block=cfg.num_self_attends_per_block,
        num_cross_attention_heads=cfg.num_cross_attention_heads,
        num_self_attention_heads=cfg.num_self_attention_heads,
        qk_channels=cfg.qk_channels,
        v_channels=cfg.v_channels,
        cross_attention_shape_for_attention=cfg.cross_attention_shape_for_attention,
        cross_attention_widening_factor=cfg.cross_attention_widening_factor,
        self_attention_widening_factor=cfg.self_attention_widening_factor,
        use_query_residual=cfg.use_query_residual,
        activation=act,
    )

    dec = None
    theirs_dec = model.decoder
    if theirs_dec is not None:
        basic = (
            theirs_dec.decoder
            if isinstance(theirs_dec, hf.PerceiverClassificationDecoder)
            else theirs_dec
        )
        if not isinstance(basic, hf.PerceiverBasicDecoder) or basic.position_encoding_only:
            raise invalid("model", "a classification or basic decoder", type(theirs_dec).__name__)
        if basic.position_encoding_type == "none":
            raise invalid(
                "model", "a decoder with its own position queries", "position_encoding_type='none'"
            )
        pos = _position_options(basic.output_position_encodings)
        if pos["position_encoding"] == "fourier":
            # transformers builds a basic decoder's Fourier queries over the *encoder inputs'*
            # trailing shape (or, sub-sampled, at -1 + 2 i / n): not a grid to reproduce
            raise invalid(
                "model",
                "a decoder with trainable position queries (transformers' Fourier decoder "
                "queries are built over inputs.shape[2:], not over output_index_dims)",
                "position_encoding_type='fourier'",
            )
        project = basic.positions_projection
        layer = basic.decoding_cross_attention
        options = dict(
            num_channels=basic.num_channels,
            num_pos_channels=pos.pop("num_channels"),
            project_pos_dim=project.out_features if isinstance(project, nn.Linear) else None,
            concat_preprocessed_input=basic.concat_preprocessed_input,
            final_project=basic.final_project,
            activation=act,
            **_layer_options(layer),
            **pos,
        )
        if isinstance(theirs_dec, hf.PerceiverClassificationDecoder):
            dec = ClassificationDecoder(cfg.d_latents, theirs_dec.num_labels, **options)
        else:
            dims = basic.output_index_dims
            dec = BasicDecoder(
                cfg.d_latents,
                basic.output_num_channels,
                output_index_dims=(dims,) if isinstance(dims, int) else tuple(dims),
                **options,
            )
    ours = PerceiverIO(enc, dec, pre)
    ours.load_state_dict(convert_transformers_state_dict(model.state_dict()))
    return ours


# -- moved ---------------------------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    # The multimodal autoencoder lives in grouping.models.multimodal (which imports this module);
    # its names stay readable here.
    from . import multimodal

    if name in multimodal.__all__:
        return getattr(multimodal, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
