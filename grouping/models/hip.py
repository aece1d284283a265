"""HiP (Hierarchical Perceiver) in torch: the official architecture, and group-wise MAE.

The official Haiku module (Carreira et al. 2022, google-deepmind/hierarchical_perceiver,
``perceiver.py``) with its constructor arguments, its parameter tree (:func:`load_haiku_params`
loads the dict that ``hk.transform(...).init`` returns) and its forward, step by step:

1. every modality ``[B, N_m, C_m]`` is embedded to ``num_embedding_channels`` (``E``) by its own
   linear map, and a learned position encoding ``[N_m, E]`` of its own is added (projected by one
   shared ``E -> E`` linear map whenever ``num_position_encoding_channels`` differs from ``E``:
   the official compares the two numbers but always learns the table at width ``E``);
2. the concatenated tokens are split into ``num_groups[0]`` groups
   (:func:`grouping.core.group_layout`: contiguous groups that never mix modalities, zero
   padding at the end of each modality and of each group);
3. block ``i`` regroups its input to ``num_groups[i]`` groups (``regroup_type``), cross-attends
   from ``z_index_dim[i]`` learned latents per group (plus, in the decoder half, the output of
   the mirrored encoder block: HiP's U-Net skip), then runs ``num_self_attends_per_block[i]``
   self-attention layers inside each group. The middle block is the processor (one group);
   ``processor_index_dim_train`` / ``_eval`` change its latent count (a random subset of the
   latents at train time, or more latents at eval time);
4. the reconstruction head cross-attends from the grouped position encodings to the last
   block's latents; the result is ungrouped and un-embedded per modality.

``forward(inputs) -> {"input_reconstruction": {m: [B, N_m, C_m]}, "latents": {m: ...}}``
returns what the official returns, ``latents`` included (the official "ungroups" the last
block's ``[B, G, Z, D]`` latents with the input's group map; we reproduce its slicing).
:class:`HiPClassBottleneck` feeds label modalities into the processor and reads them out there.

The blocks are Perceiver IO's: :class:`HiPCrossAttention` is a
:class:`~grouping.models.perceiver.PerceiverAttention` (with the official parameter names), the
MLP activations come from :data:`grouping.models.layers.ACTIVATION_LAYERS`, stochastic depth is
:func:`grouping.models.layers.drop_path`, and the group ops are the adapter's
(:mod:`grouping.adapter.groups`).

Differences, each deliberate:

* ``activation_name`` is honoured. The official passes it to no layer (every MLP uses the
  default squared ReLU), so only the default ``"sq_relu"`` reproduces it. Its names are the
  official's (``getattr(jax.nn, name)``: ``"gelu"`` is the tanh approximation), mapped onto
  the shared table by :data:`HAIKU_ACTIVATIONS`.
* ``mask_padding=True`` keeps padding slots out of the first cross-attention (the official, the
  default here, lets them take part as zero vectors).
* The train-time subset of processor latents is drawn with torch's generator (the official uses
  JAX keys, so those draws cannot match).

Group-wise masked auto-encoding (:class:`HiPMAE`, the paper's pretraining; not in the released
code): each group keeps the same number of random tokens (``groupwise_masks``), the first
cross-attention reads the visible tokens only, and the reconstruction head decodes the masked
positions only; the loss is the MSE there.

Shapes: ``B`` batch, ``G`` groups, ``L`` group length, ``Z`` latents per group, ``D`` latent
channels, ``E`` embedding channels. Everything is float32 unless autocast says otherwise.

References:
    Carreira, Joao, et al. "Hierarchical Perceiver." arXiv:2202.10890 (2022). Jaegle, Andrew,
    et al. "Perceiver IO." ICLR 2022.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from ..adapter.groups import gather_slots, group_modalities, regroup, ungroup_modalities
from ..core.errors import GroupingValueError, as_rng, check_int, invalid
from ..core.groups import REGROUP_TYPES, GroupLayout, group_layout, groupwise_slots
from ..core.masking import groupwise_masks
from .layers import CrossAttention, Mlp, activation_layer, drop_path
from .mae import HiPMAEOutput
from .perceiver import PerceiverAttention
from .step import Preparer, Step

__all__ = [
    "ACTIVATIONS",
    "HAIKU_ACTIVATIONS",
    "OFFICIAL_TEST_DATASETS",
    "OFFICIAL_TEST_LABEL_MODALITIES",
    "VARIANTS",
    "HiP",
    "HiPClassBottleneck",
    "HiPClassifier",
    "HiPClassifierConfig",
    "HiPMAE",
    "HiPStep",
    "HaikuParamsError",
    "convert_haiku_params",
    "haiku_names",
    "hip_16",
    "hip_16x3",
    "hip_256",
    "hip_class_bottleneck_mini",
    "hip_mini",
    "load_haiku_params",
    "hip_classifier",
    "mae_hip",
    "prepare_hip",
]

# The official variants (perceiver.py's VARIANTS), one tuple entry per block.
VARIANTS: dict[str, dict[str, Any]] = {
    "Mini": dict(
        num_groups=(16, 1, 16),
        num_self_attends_per_block=(2, 1, 1),
        z_index_dim=(128, 64, 128),
        num_z_channels=(128, 1024, 128),
        num_cross_attend_heads=(1, 1, 1),
        num_self_attend_heads=(4, 32, 4),
        cross_attend_widening_factor=(1, 1, 1),
        self_attend_widening_factor=(4, 4, 4),
        num_embedding_channels=32,
    ),
    "16": dict(
        num_groups=(16, 4, 1, 1, 1, 4, 16),
        num_self_attends_per_block=(2, 2, 18, 2, 1, 1, 1),
        z_index_dim=(128, 256, 256, 64, 256, 256, 128),
        num_z_channels=(128, 256, 512, 1024, 512, 256, 128),
        num_cross_attend_heads=(1,) * 7,
        num_self_attend_heads=(4, 8, 16, 32, 16, 8, 4),
        cross_attend_widening_factor=(1,) * 7,
        self_attend_widening_factor=(4,) * 7,
        num_embedding_channels=32,
    ),
    "256": dict(
        num_groups=(256, 64, 16, 4, 1, 1, 1, 4, 16, 64, 256),
        num_self_attends_per_block=(1, 1, 2, 2, 18, 2, 1, 1, 1, 1, 1),
        z_index_dim=(32, 64, 128, 256, 256, 64, 256, 256, 128, 64, 32),
        num_z_channels=(64, 96, 128, 256, 512, 1024, 256, 128, 64, 32, 16),
        num_cross_attend_heads=(1,) * 11,
        num_self_attend_heads=(1, 2, 4, 8, 16, 32, 16, 8, 4, 2, 1),
        cross_attend_widening_factor=(1,) * 11,
        self_attend_widening_factor=(4,) * 11,
        num_embedding_channels=16,
    ),
    "16x3": dict(
        num_groups=(16, 1, 16),
        num_self_attends_per_block=(2, 18, 2),
        z_index_dim=(128, 256, 128),
        num_z_channels=(128, 1024, 128),
        num_cross_attend_heads=(1, 1, 1),
        num_self_attend_heads=(4, 32, 4),
        cross_attend_widening_factor=(1, 1, 1),
        self_attend_widening_factor=(4, 4, 4),
        num_embedding_channels=32,
    ),
}

# The official test's mock datasets (perceiver_test.py) and shared hyperparameters: the setting
# in which the published parameter counts hold.
OFFICIAL_TEST_DATASETS: dict[str, dict[str, tuple[int, int]]] = {
    "imagenet": {"imagenet_image": (1024, 3), "imagenet_label": (32, 1)},
    "audioset": {"audioset_audio": (128, 16), "audioset_label": (16, 16)},
}
OFFICIAL_TEST_LABEL_MODALITIES = (
    "audioset_label",
    "coco_labels",
    "imagenet_label",
    "jft_label",
    "multi_nli_labels",
    "objects365_labels",
)
_SHARED_DEFAULTS: dict[str, Any] = dict(
    num_position_encoding_channels=512,
    regroup_type="reshape",
    activation_name="sq_relu",
    dropout_prob=0.0,
    drop_path_rate=0.0,
)
# The official's activation_name (``getattr(jax.nn, name)``, or "sq_relu") -> the name in
# layers.ACTIVATION_LAYERS. jax.nn.gelu is the tanh approximation; "gelu_exact" is ours.
HAIKU_ACTIVATIONS: Mapping[str, str] = MappingProxyType(
    {
        "sq_relu": "squared_relu",
        "relu": "relu",
        "gelu": "gelu_tanh",
        "gelu_exact": "gelu",
        "silu": "silu",
    }
)
ACTIVATIONS = tuple(HAIKU_ACTIVATIONS)
_PER_BLOCK = (
    "num_groups",
    "num_self_attends_per_block",
    "z_index_dim",
    "num_z_channels",
    "num_cross_attend_heads",
    "num_self_attend_heads",
    "cross_attend_widening_factor",
    "self_attend_widening_factor",
)


def _activation(name: str) -> type[nn.Module]:
    """The MLP activation of the official ``activation_name`` (see :data:`HAIKU_ACTIVATIONS`)."""
    if not isinstance(name, str) or name not in HAIKU_ACTIVATIONS:
        raise invalid("activation_name", f"one of {ACTIVATIONS}", name)
    return activation_layer(HAIKU_ACTIVATIONS[name])


def _variance_scaling_(tensor: torch.Tensor, fan_in: int, scale: float = 1.0) -> torch.Tensor:
    """Haiku's ``VarianceScaling(scale)`` (fan-in, truncated normal at two deviations)."""
    if scale == 0.0:
        return nn.init.zeros_(tensor)
    std = math.sqrt(scale / max(1, fan_in)) / 0.87962566103423978
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def _init_linear(linear: nn.Linear, scale: float = 1.0) -> None:
    _variance_scaling_(linear.weight.data, linear.in_features, scale)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


# -- token ops: grouping.adapter.groups ------------------------------------------------------

# The names these functions had here (the adapter's group_tokens / ungroup_tokens are the
# window groups of a WindowLayout, another thing).
group_tokens = group_modalities
ungroup_tokens = ungroup_modalities


def _official_ungroup(
    x: torch.Tensor, layout: GroupLayout, names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """``ConstNumGrouper.ungroup`` as the official writes it, for any ``[B, G, M, C]``: each
    modality's groups, cut by the group padding, flattened, cut by the final padding (Python's
    slicing rules, as the official, also when ``M`` is not the group length)."""
    out = {}
    for m, name in enumerate(names):
        start, count = layout.group_start[m], layout.groups_per_modality[m]
        part = x[:, start : start + count]
        part = part[:, :, : part.shape[2] - layout.group_padding[m]]
        part = part.reshape(part.shape[0], -1, part.shape[-1])
        out[name] = part[:, : part.shape[1] - layout.final_padding[m]]
    return out


def _attend_mask(mask: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A key mask ``[R, M]`` (True = attend) as an SDPA mask ``[R, 1, 1, M]``, with the rows
    that attend to nothing opened (their output is zeroed afterwards, as the official)."""
    if mask is None:
        return None, None
    empty = ~mask.any(dim=-1)  # R
    if bool(empty.any()):
        mask = mask | empty[:, None]
    return mask[:, None, None, :], empty


# -- blocks -----------------------------------------------------------------------------------


class HiPCrossAttention(PerceiverAttention):
    """The official ``HiPCrossAttention``: Perceiver IO's cross-attention layer
    (:class:`~grouping.models.perceiver.PerceiverAttention`) from (learned) queries to grouped
    inputs, inside every group.

    ``attention = attn(norm_q(q), norm_kv(inputs)) [+ q]``, ``out = attention +
    mlp(norm_mlp(attention))``. Queries and keys are projected to the inputs' width (``qk =
    v = C_in``), the output to the queries' width. Besides Perceiver IO's layers it holds the
    learned latent queries and the U-Net skip's projection, and it zeroes the attention of a
    group whose keys are all masked (as the official).

    Args:
        in_channels: width ``C_in`` of the inputs.
        out_channels: width of the queries and of the output.
        num_heads: heads.
        widening_factor: MLP hidden width over ``out_channels``.
        num_groups: with ``index_dim_eval``: learn ``[num_groups * index_dim_eval,
            out_channels]`` latent queries (``query_inputs``); None when the queries are given
            at call time (the reconstruction head).
        index_dim_train: latents per group at train / eval time (``train <=
            eval``; fewer at train time means a random subset per sample and group).
        index_dim_eval: latents per group at train / eval time (``train <=
            eval``; fewer at train time means a random subset per sample and group).
        residual_channels: width of a U-Net skip added to the queries; a linear map
            (``pre_attention_residual_linear``) projects it when it differs from
            ``out_channels``.
        use_post_attention_residual: add the queries to the attention output (Perceiver IO's
            ``use_query_residual``).
        activation_name: the MLP's activation (the official's name, see
            :data:`HAIKU_ACTIVATIONS`).

    Shape:
        ``forward(inputs [B, G, M, C_in], query_inputs=None [B, G, N, out], residual=None,
        key_mask=None [B, G, M] bool True = attend) -> [B, G, N, out]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        num_heads: int = 1,
        widening_factor: int = 1,
        num_groups: int | None = None,
        index_dim_train: int | None = None,
        index_dim_eval: int | None = None,
        residual_channels: int | None = None,
        use_post_attention_residual: bool = False,
        activation_name: str = "sq_relu",
    ) -> None:
        # Not PerceiverAttention.__init__: the latents and the skip's projection come first,
        # then Perceiver IO's layers (_add_layers), as Haiku creates them, so that a seeded
        # initialisation and the parameter order are the official's.
        nn.Module.__init__(self)
        self.num_heads = check_int("num_cross_attend_heads", num_heads, minimum=1)
        if in_channels % self.num_heads:
            raise invalid("num_cross_attend_heads", f"a divisor of {in_channels}", num_heads)
        self.index_dim_train = index_dim_train
        self.index_dim_eval = index_dim_eval
        self.num_groups = num_groups
        if num_groups is not None:
            assert index_dim_train is not None and index_dim_eval is not None
            self.query_inputs: nn.Parameter | None = nn.Parameter(
                torch.empty(num_groups * index_dim_eval, out_channels)
            )
            _variance_scaling_(self.query_inputs.data, num_groups * index_dim_eval)
        else:
            self.query_inputs = None
        self.pre_attention_residual_linear: nn.Linear | None = None
        if residual_channels is not None and residual_channels != out_channels:
            self.pre_attention_residual_linear = nn.Linear(residual_channels, out_channels)
            _init_linear(self.pre_attention_residual_linear)
        self._add_layers(
            out_channels,
            in_channels,
            num_heads=self.num_heads,
            qk_channels=in_channels,
            v_channels=in_channels,
            shape_for_attention="kv",
            use_query_residual=use_post_attention_residual,
            widening_factor=check_int("cross_attend_widening_factor", widening_factor, minimum=1),
            dropout=0.0,
            act_layer=_activation(activation_name),
            out_dim=out_channels,
            init_linear=_init_linear,
        )

    @property
    def use_post_attention_residual(self) -> bool:
        """The official name of :attr:`use_query_residual`."""
        return self.use_query_residual

    def latent_queries(self, batch: int) -> torch.Tensor:
        """The learned queries ``[B, G, N, C]``: every latent at eval time, a random subset of
        ``index_dim_train`` per sample and group at train time when it is smaller."""
        assert self.query_inputs is not None and self.num_groups is not None
        q = self.query_inputs.view(1, self.num_groups, -1, self.query_inputs.shape[-1])
        q = q.expand(batch, -1, -1, -1)
        n_train, n_eval = self.index_dim_train, self.index_dim_eval
        if self.training and n_train is not None and n_eval is not None and n_train < n_eval:
            noise = torch.rand(batch, self.num_groups, n_eval, device=q.device)
            pick = noise.argsort(dim=-1)[..., :n_train]
            q = q.gather(2, pick[..., None].expand(-1, -1, -1, q.shape[-1]))
        return q

    def forward(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        query_inputs: torch.Tensor | None = None,
        residual: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, g, m, _ = inputs.shape
        q = self.latent_queries(b) if query_inputs is None else query_inputs
        if residual is not None:
            if self.pre_attention_residual_linear is not None:
                residual = self.pre_attention_residual_linear(residual)
            q = q + residual
        flat_mask, empty = _attend_mask(None if key_mask is None else key_mask.reshape(b * g, m))
        attention = self.attention(q, inputs, flat_mask)  # B, G, N, out
        if empty is not None:
            attention = attention.masked_fill(empty.view(b, g, 1, 1), 0.0)
        return self.output(attention, q)


class HiPSelfAttention(nn.Module):
    """The official ``SelfAttention`` inside each group: ``x + drop_path(dropout(attn(norm1
    (x))))``, then ``x + drop_path(dropout(mlp(norm2(x))))``.

    Stochastic depth is the official's: per sample, without rescaling by the keep
    probability.

    Shape:
        ``forward(x [B, G, N, D]) -> [B, G, N, D]``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        widening_factor: int = 4,
        *,
        dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        activation_name: str = "sq_relu",
    ) -> None:
        super().__init__()
        heads = check_int("num_self_attend_heads", num_heads, minimum=1)
        if channels % heads:
            raise invalid(
                "num_self_attend_heads", f"a divisor of num_z_channels={channels}", num_heads
            )
        self.norm1 = nn.LayerNorm(channels)
        self.attn = CrossAttention(channels, channels, heads)
        for linear in (self.attn.q, self.attn.k, self.attn.v, self.attn.proj):
            _init_linear(linear)
        self.norm2 = nn.LayerNorm(channels)
        width = check_int("self_attend_widening_factor", widening_factor, minimum=1)
        self.mlp = Mlp(channels, width * channels, act_layer=_activation(activation_name))
        _init_linear(self.mlp.fc1)
        _init_linear(self.mlp.fc2)
        self.dropout_prob = float(dropout_prob)
        self.drop_path_rate = float(drop_path_rate)

    def _drop_path(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_path_rate, self.training, scale_by_keep=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g, n, d = x.shape
        h = self.norm1(x).reshape(b * g, n, d)
        attention = self.attn(h, h).reshape(b, g, n, d)
        p = self.dropout_prob if self.training else 0.0
        x = x + self._drop_path(F.dropout(attention, p, self.training))
        return x + self._drop_path(F.dropout(self.mlp(self.norm2(x)), p, self.training))


class HiPBlock(nn.Module):
    """The official ``PerceiverBlock``: a :class:`HiPCrossAttention` from learned latents (with
    the post-attention residual), then a stack of :class:`HiPSelfAttention` layers.

    ``index_dim_train`` / ``index_dim_eval`` are the latent counts per group at train / eval
    time (``train <= eval``; :class:`HiP` checks its processor's overrides and passes
    ``z_index_dim`` for both elsewhere).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        num_groups: int,
        channels: int,
        num_self_attends: int,
        num_self_attend_heads: int,
        self_attend_widening_factor: int,
        num_cross_attend_heads: int,
        cross_attend_widening_factor: int,
        residual_channels: int | None,
        index_dim_train: int,
        index_dim_eval: int,
        activation_name: str,
        dropout_prob: float,
        drop_path_rate: float,
    ) -> None:
        super().__init__()
        assert index_dim_train <= index_dim_eval, (index_dim_train, index_dim_eval)
        self.num_groups = num_groups
        self.projector = HiPCrossAttention(
            in_channels,
            channels,
            num_heads=num_cross_attend_heads,
            widening_factor=cross_attend_widening_factor,
            num_groups=num_groups,
            index_dim_train=index_dim_train,
            index_dim_eval=index_dim_eval,
            residual_channels=residual_channels,
            use_post_attention_residual=True,
            activation_name=activation_name,
        )
        self.self_attends = nn.ModuleList(
            HiPSelfAttention(
                channels,
                num_self_attend_heads,
                self_attend_widening_factor,
                dropout_prob=dropout_prob,
                drop_path_rate=drop_path_rate,
                activation_name=activation_name,
            )
            for _ in range(check_int("num_self_attends_per_block", num_self_attends, minimum=0))
        )

    def forward(
        self,
        inputs: torch.Tensor,
        residual: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        z = self.projector(inputs, residual=residual, key_mask=key_mask)
        for layer in self.self_attends:
            z = layer(z)
        return z


# -- the model --------------------------------------------------------------------------------


def _modality_table(
    modalities: Mapping[str, Any] | None, datasets: Mapping[str, Mapping[str, Any]] | None
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[str, ...]]]:
    """``({modality: (N, C)}, {dataset: modality names})``, validated."""
    if (modalities is None) == (datasets is None):
        raise invalid(
            "modalities",
            "exactly one of modalities={name: (num_tokens, channels)} or datasets={dataset: "
            "{name: (num_tokens, channels)}}",
            "both" if modalities is not None else "neither",
        )
    if modalities is not None:
        datasets = {"default": modalities}
    assert datasets is not None
    if not isinstance(datasets, Mapping) or not datasets:
        raise invalid("datasets", "a non-empty mapping of datasets to modalities", datasets)
    table: dict[str, tuple[int, int]] = {}
    members: dict[str, tuple[str, ...]] = {}
    for ds, mods in datasets.items():
        arg = "modalities" if modalities is not None else f"datasets[{ds!r}]"
        if not isinstance(mods, Mapping) or not mods:
            raise invalid(arg, "a non-empty mapping {name: (num_tokens, channels)}", mods)
        for name, spec in mods.items():
            if (
                not isinstance(name, str)
                or not isinstance(spec, Sequence)
                or len(spec) != 2
                or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in spec)
            ):
                raise invalid(f"{arg}[{name!r}]", "(num_tokens, channels), two ints >= 1", spec)
            shape = (int(spec[0]), int(spec[1]))
            if table.setdefault(name, shape) != shape:
                raise invalid(
                    f"{arg}[{name!r}]",
                    f"{table[name]}, the shape another dataset gives this modality",
                    shape,
                )
        members[str(ds)] = tuple(mods)
    return table, members


def _check_per_block(kwargs: Mapping[str, Any]) -> int:
    lengths = {}
    for name in _PER_BLOCK:
        value = kwargs[name]
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise invalid(name, "a sequence of ints, one per block", value)
        for v in value:
            check_int(name, v, minimum=1 if name != "num_self_attends_per_block" else 0)
        lengths[name] = len(value)
    count = lengths["num_groups"]
    for name, n in lengths.items():
        if n != count:
            raise invalid(name, f"{count} entries (one per block, as num_groups)", n)
    if count < 3 or count % 2 == 0:
        raise invalid(
            "num_groups",
            "an odd number >= 3 of blocks (encoder/decoder pairs around one processor)",
            count,
        )
    if kwargs["num_groups"][count // 2] != 1:
        raise invalid("num_groups", "1 group in the middle (processor) block", kwargs["num_groups"])
    for i in range(count // 2 + 1, count):
        j = count - i - 1
        for name in ("num_groups", "z_index_dim"):
            if kwargs[name][i] != kwargs[name][j]:
                raise invalid(
                    name,
                    f"equal entries in mirrored blocks {j} and {i} (the U-Net skip adds one to "
                    "the other)",
                    kwargs[name],
                )
    if kwargs["num_groups"][-1] != kwargs["num_groups"][0]:
        raise invalid("num_groups", "the same count in the first and last blocks", kwargs)
    return count


@dataclass(frozen=True)
class HiPConfig:
    """A HiP's constructor arguments, as built (``model.config``); see :class:`HiP`."""

    num_groups: tuple[int, ...]
    num_self_attends_per_block: tuple[int, ...]
    z_index_dim: tuple[int, ...]
    num_z_channels: tuple[int, ...]
    num_cross_attend_heads: tuple[int, ...]
    num_self_attend_heads: tuple[int, ...]
    cross_attend_widening_factor: tuple[int, ...]
    self_attend_widening_factor: tuple[int, ...]
    num_embedding_channels: int
    modalities: Mapping[str, tuple[int, int]]
    datasets: Mapping[str, tuple[str, ...]]
    num_position_encoding_channels: int | None
    regroup_type: str
    activation_name: str
    processor_index_dim_train: int | None
    processor_index_dim_eval: int | None
    dropout_prob: float
    drop_path_rate: float
    mask_padding: bool
    label_modalities: tuple[str, ...] = ()


class HiP(nn.Module):
    """Hierarchical Perceiver, the official ``HiP`` (see the module docstring).

    Args:
        num_groups: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        num_self_attends_per_block: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        z_index_dim: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        num_z_channels: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        num_cross_attend_heads: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        num_self_attend_heads: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        cross_attend_widening_factor: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        self_attend_widening_factor: one entry per block (an odd number ``>= 3``: encoder
            blocks, the processor with one group, mirrored decoder blocks).
        num_embedding_channels: the width ``E`` every modality is embedded to.
        modalities: ``{name: (num_tokens, channels)}`` of the inputs.
        datasets: ``{dataset: {name: (num_tokens, channels)}}`` for one model shared by several
            datasets (exactly one of ``modalities`` and ``datasets``); a modality has one shape.
        num_position_encoding_channels: the official's switch for the shared position
            projection (present when it is not None and differs from ``E``).
        regroup_type: ``"reshape"`` or ``"transpose_reshape"``.
        activation_name: the MLPs' activation (the official ignores it; see the module
            docstring).
        processor_index_dim_train: the processor's latent count at
            train / eval time (at most one of them).
        processor_index_dim_eval: the processor's latent count at
            train / eval time (at most one of them).
        dropout_prob: of the self-attention layers.
        drop_path_rate: of the self-attention layers.
        mask_padding: keep padding slots out of the first cross-attention.

    Shape:
        ``forward({m: [B, N_m, C_m]}) -> {"input_reconstruction": {m: [B, N_m, C_m]},
        "latents": {m: [B, ..., D_last]}}``; the inputs are one dataset's modalities (any
        order; the order sets the grouping, as in the official).
    """

    _block_prefix = "block"

    def __init__(
        self,
        num_groups: Sequence[int],
        num_self_attends_per_block: Sequence[int],
        z_index_dim: Sequence[int],
        num_z_channels: Sequence[int],
        num_cross_attend_heads: Sequence[int],
        num_self_attend_heads: Sequence[int],
        cross_attend_widening_factor: Sequence[int],
        self_attend_widening_factor: Sequence[int],
        num_embedding_channels: int,
        *,
        modalities: Mapping[str, tuple[int, int]] | None = None,
        datasets: Mapping[str, Mapping[str, tuple[int, int]]] | None = None,
        num_position_encoding_channels: int | None = None,
        regroup_type: str = "reshape",
        activation_name: str = "sq_relu",
        processor_index_dim_train: int | None = None,
        processor_index_dim_eval: int | None = None,
        dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        mask_padding: bool = False,
    ) -> None:
        super().__init__()
        arch = dict(
            num_groups=tuple(num_groups),
            num_self_attends_per_block=tuple(num_self_attends_per_block),
            z_index_dim=tuple(z_index_dim),
            num_z_channels=tuple(num_z_channels),
            num_cross_attend_heads=tuple(num_cross_attend_heads),
            num_self_attend_heads=tuple(num_self_attend_heads),
            cross_attend_widening_factor=tuple(cross_attend_widening_factor),
            self_attend_widening_factor=tuple(self_attend_widening_factor),
        )
        self.num_blocks = _check_per_block(arch)
        self.processor_index = self.num_blocks // 2
        for name, value in arch.items():
            setattr(self, name, value)
        self.num_embedding_channels = check_int(
            "num_embedding_channels", num_embedding_channels, minimum=1
        )
        if regroup_type not in REGROUP_TYPES:
            raise invalid("regroup_type", f"one of {REGROUP_TYPES}", regroup_type)
        _activation(activation_name)
        for name, value in (
            ("processor_index_dim_train", processor_index_dim_train),
            ("processor_index_dim_eval", processor_index_dim_eval),
            ("num_position_encoding_channels", num_position_encoding_channels),
        ):
            if value is not None:
                check_int(name, value, minimum=1)
        for name, value in (("dropout_prob", dropout_prob), ("drop_path_rate", drop_path_rate)):
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise invalid(name, "a float in [0, 1)", value)
        self.regroup_type = regroup_type
        self.activation_name = activation_name
        self.mask_padding = bool(mask_padding)
        self.modalities, self.datasets = _modality_table(modalities, datasets)
        self.num_position_encoding_channels = num_position_encoding_channels
        if processor_index_dim_train is not None and processor_index_dim_eval is not None:
            raise invalid(
                "processor_index_dim_train",
                "None when processor_index_dim_eval is set (only one may be overridden)",
                processor_index_dim_train,
            )
        n_proc = self.z_index_dim[self.processor_index]
        if processor_index_dim_train is not None and processor_index_dim_train > n_proc:
            raise invalid(
                "processor_index_dim_train",
                f"at most the processor's z_index_dim {n_proc} (a subset of its latents)",
                processor_index_dim_train,
            )
        if processor_index_dim_eval is not None and processor_index_dim_eval < n_proc:
            raise invalid(
                "processor_index_dim_eval",
                f"at least the processor's z_index_dim {n_proc} (more latents at eval time)",
                processor_index_dim_eval,
            )
        self._check_groups(processor_index_dim_train, processor_index_dim_eval)
        self.config = HiPConfig(
            **arch,
            num_embedding_channels=self.num_embedding_channels,
            modalities=MappingProxyType(dict(self.modalities)),
            datasets=MappingProxyType(dict(self.datasets)),
            num_position_encoding_channels=num_position_encoding_channels,
            regroup_type=regroup_type,
            activation_name=activation_name,
            processor_index_dim_train=processor_index_dim_train,
            processor_index_dim_eval=processor_index_dim_eval,
            dropout_prob=float(dropout_prob),
            drop_path_rate=float(drop_path_rate),
            mask_padding=self.mask_padding,
            label_modalities=getattr(self, "label_modalities", ()),
        )
        e = self.num_embedding_channels
        self.embed = nn.ModuleDict()
        self.unembed = nn.ModuleDict()
        self.pos_emb = nn.ParameterDict()
        for name, (n, c) in self._encoded_modalities().items():
            self.embed[name] = nn.Linear(c, e)
            _init_linear(self.embed[name])
            self.unembed[name] = nn.Linear(e, c)
            _init_linear(self.unembed[name], scale=0.0)  # the official starts at zero
            self.pos_emb[name] = nn.Parameter(_variance_scaling_(torch.empty(n, e), n))
        # The official creates one projection per modality *slot* of a call (Haiku names the
        # second one ``position_encoding_linear_1``), shared by the datasets slot by slot.
        self.position_encoding_linear = nn.ModuleList()
        if num_position_encoding_channels is not None and num_position_encoding_channels != e:
            encoded = self._encoded_modalities()
            slots = max(sum(m in encoded for m in mods) for mods in self.datasets.values())
            for _ in range(slots):
                self.position_encoding_linear.append(nn.Linear(e, e, bias=False))
                _init_linear(self.position_encoding_linear[-1])
        self.blocks = nn.ModuleList()
        in_channels = e
        for i in range(self.num_blocks):
            mirror = self.num_blocks - i - 1
            n_train = n_eval = self.z_index_dim[i]
            if i == self.processor_index and processor_index_dim_train is not None:
                n_train = processor_index_dim_train  # checked above: at most z_index_dim
            if i == self.processor_index and processor_index_dim_eval is not None:
                n_eval = processor_index_dim_eval  # checked above: at least z_index_dim
            self.blocks.append(
                HiPBlock(
                    in_channels,
                    num_groups=self.num_groups[i],
                    channels=self.num_z_channels[i],
                    num_self_attends=self.num_self_attends_per_block[i],
                    num_self_attend_heads=self.num_self_attend_heads[i],
                    self_attend_widening_factor=self.self_attend_widening_factor[i],
                    num_cross_attend_heads=self.num_cross_attend_heads[i],
                    cross_attend_widening_factor=self.cross_attend_widening_factor[i],
                    residual_channels=(
                        self.num_z_channels[mirror] if i > self.processor_index else None
                    ),
                    index_dim_train=n_train,
                    index_dim_eval=n_eval,
                    activation_name=activation_name,
                    dropout_prob=dropout_prob,
                    drop_path_rate=drop_path_rate,
                )
            )
            in_channels = self.num_z_channels[i]
        self.reconstruction_head = HiPCrossAttention(
            self.num_z_channels[-1], e, num_heads=1, activation_name=activation_name
        )
        self._layouts: dict[tuple[int, ...], GroupLayout] = {}
        self._layout_buffers: dict[tuple[int, ...], int] = {}  # index_dims -> buffer number
        encoded = self._encoded_modalities()
        for mods in self.datasets.values():  # each dataset's layout, in its order
            dims = [self.modalities[m][0] for m in mods if m in encoded]
            if dims:
                self._layout_buffer_number(self.layout(dims), torch.device("cpu"))

    # -- construction helpers (overridden by the class bottleneck) --

    def _check_groups(self, index_train: int | None, index_eval: int | None) -> None:
        """Every dataset fits the first level's groups; every regroup divides its latents."""
        encoded = self._encoded_modalities()
        for ds, mods in self.datasets.items():
            count = sum(m in encoded for m in mods)
            if count > self.num_groups[0]:
                raise invalid(
                    "num_groups",
                    f"at least one first-level group per modality ({count} in dataset {ds!r}; "
                    "a group never mixes modalities)",
                    self.num_groups,
                )
        for i in range(1, self.num_blocks):
            sizes = {self.z_index_dim[i - 1]}
            if i - 1 == self.processor_index:
                sizes |= {n for n in (index_train, index_eval) if n is not None}
            for n in sorted(sizes):
                total = self.num_groups[i - 1] * n
                if total % self.num_groups[i]:
                    raise invalid(
                        "num_groups",
                        f"a group count for block {i} that divides the {self.num_groups[i - 1]} "
                        f"x {n} = {total} latents of block {i - 1} (the regroup)",
                        self.num_groups,
                    )

    def _encoded_modalities(self) -> dict[str, tuple[int, int]]:
        return dict(self.modalities)

    # -- the pieces of the forward --

    def layout(self, index_dims: Sequence[int]) -> GroupLayout:
        """The first level's :class:`~grouping.core.GroupLayout` of modalities with these token
        counts (in input order), cached."""
        key = tuple(int(n) for n in index_dims)
        if key not in self._layouts:
            self._layouts[key] = group_layout(self.num_groups[0], key)
        return self._layouts[key]

    def _layout_buffer_number(self, layout: GroupLayout, device: torch.device) -> int:
        """The number ``k`` of ``layout``'s non-persistent buffers ``_layout_index_k``,
        ``_layout_inverse_k`` and (with padding) ``_layout_real_k``, registered on ``device``
        the first time: each dataset's layout at construction, another input order when it is
        first seen. They move with ``.to(device)`` and stay out of ``state_dict``."""
        key = layout.index_dims
        if key not in self._layout_buffers:
            k = len(self._layout_buffers)
            tensors = {
                "index": torch.from_numpy(layout.index),  # G, L
                "inverse": torch.from_numpy(layout.inverse),  # N
            }
            if layout.padding.any():
                tensors["real"] = torch.from_numpy(~layout.padding).unsqueeze(0)  # 1, G, L
            for name, tensor in tensors.items():
                self.register_buffer(f"_layout_{name}_{k}", tensor.to(device), persistent=False)
            self._layout_buffers[key] = k
        return self._layout_buffers[key]

    def refill_layout_buffers(self) -> None:
        """Recompute the layout buffers' values in place, on their device.

        The buffers are derived, not saved: a model built on the meta device and materialised
        with ``to_empty`` (then ``load_state_dict``) holds uninitialised memory in them until
        this is called.
        """
        with torch.no_grad():
            for key, k in self._layout_buffers.items():
                layout = group_layout(self.num_groups[0], key)
                values = {"index": layout.index, "inverse": layout.inverse}
                if layout.padding.any():
                    values["real"] = (~layout.padding)[None]
                for name, value in values.items():
                    getattr(self, f"_layout_{name}_{k}").copy_(torch.from_numpy(value))

    def layout_tensors(
        self, layout: GroupLayout, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index [G, L], inverse [N])`` of ``layout`` as int64 tensors on ``device``: the
        model's buffers (built once per layout, moved by ``.to``), not built every forward."""
        k = self._layout_buffer_number(layout, device)
        index = getattr(self, f"_layout_index_{k}")
        inverse = getattr(self, f"_layout_inverse_{k}")
        return index.to(device), inverse.to(device)

    def check_inputs(self, inputs: Any) -> tuple[str, ...]:
        """Validate one dataset's inputs ``{m: [B, N_m, C_m]}``; returns their names in order."""
        if not isinstance(inputs, Mapping) or not inputs:
            raise invalid("inputs", "a non-empty dict {modality: tensor [B, N, C]}", inputs)
        keys = tuple(inputs)
        known = {frozenset(v): ds for ds, v in self.datasets.items()}
        for name in keys:
            if name not in self.modalities:
                raise invalid(
                    "inputs",
                    "modalities the model was built for: " + ", ".join(sorted(self.modalities)),
                    f"a modality {name!r}",
                )
        if frozenset(keys) not in known:
            raise invalid(
                "inputs",
                "the modalities of one dataset: "
                + "; ".join(f"{ds}: {', '.join(v)}" for ds, v in self.datasets.items()),
                ", ".join(keys),
            )
        batch, device = None, None
        for name in keys:
            x = inputs[name]
            n, c = self.modalities[name]
            if not isinstance(x, torch.Tensor) or x.dim() != 3 or tuple(x.shape[1:]) != (n, c):
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise invalid(f"inputs[{name!r}]", f"a tensor [B, {n}, {c}]", shape)
            if not x.is_floating_point():
                raise invalid(f"inputs[{name!r}]", "a floating-point tensor", x.dtype)
            if batch is None:
                batch, device = x.shape[0], x.device
            elif x.shape[0] != batch or x.device != device:
                raise invalid(
                    f"inputs[{name!r}]",
                    f"the batch ({batch}) and device ({device}) of the other modalities",
                    f"[{x.shape[0]}, ...] on {x.device}",
                )
        return keys

    def positions(self, name: str, slot: int, batch: int) -> torch.Tensor:
        """The position encoding ``[B, N, E]`` of modality ``name`` at input position ``slot``
        (projected by the slot's linear map, if the model has them)."""
        pos = self.pos_emb[name]
        if len(self.position_encoding_linear):
            pos = self.position_encoding_linear[slot](pos)
        return pos.unsqueeze(0).expand(batch, -1, -1)

    def embed_and_group(
        self, inputs: Mapping[str, torch.Tensor], names: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, GroupLayout]:
        """Embed, add positions, group: ``(z [B, G, L, E], query [B, G, L, E], layout)``; the
        query is the grouped position encodings (the reconstruction head's queries)."""
        batch = inputs[names[0]].shape[0]
        layout = self.layout([self.modalities[m][0] for m in names])
        index, _ = self.layout_tensors(layout, inputs[names[0]].device)
        pos = [self.positions(m, k, batch) for k, m in enumerate(names)]
        z = torch.cat(
            [self.embed[m](inputs[m]) + p for m, p in zip(names, pos, strict=True)], dim=1
        )
        query = group_modalities(torch.cat(pos, dim=1), index)
        return group_modalities(z, index), query, layout

    def padding_mask(self, layout: GroupLayout, device: torch.device) -> torch.Tensor | None:
        """bool ``[1, G, L]`` True at real tokens when ``mask_padding``, else None."""
        if not self.mask_padding or not layout.padding.any():
            return None
        k = self._layout_buffer_number(layout, device)
        return getattr(self, f"_layout_real_{k}").to(device)

    def process(self, z: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The blocks: ``[B, G_0, M, E] -> [B, G_last, Z_last, D_last]``; ``key_mask`` ``[B or
        1, G_0, M]`` (True = attend) applies to the first cross-attention."""
        hidden: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                z = regroup(z, self.num_groups[i], self.regroup_type)
            residual = hidden[self.num_blocks - i - 1] if i > self.processor_index else None
            mask = None
            if i == 0 and key_mask is not None:
                mask = key_mask.expand(z.shape[0], -1, -1)
            z = block(z, residual=residual, key_mask=mask)
            hidden.append(z)
        return z

    def reconstruct(self, latents: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The reconstruction head: ``(latents [B, G, Z, D], query [B, G, Q, E]) -> [B, G, Q,
        E]``."""
        return self.reconstruction_head(latents, query_inputs=query)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        names = self.check_inputs(inputs)
        z, query, layout = self.embed_and_group(inputs, names)
        latents = self.process(z, self.padding_mask(layout, z.device))
        recon = self.reconstruct(latents, query)
        _, inverse = self.layout_tensors(layout, z.device)
        tokens = ungroup_modalities(recon, inverse)
        out, start = {}, 0
        for m in names:
            n = self.modalities[m][0]
            out[m] = self.unembed[m](tokens[:, start : start + n])
            start += n
        return {"input_reconstruction": out, "latents": _official_ungroup(latents, layout, names)}


class HiPClassBottleneck(HiP):
    """The official ``HiPClassBottleneck``: label modalities skip the encoder and decoder.

    The other modalities go through :class:`HiP`. Each label modality is embedded to the
    processor's input width, gets its own position encoding of that width (never projected),
    is appended to the processor's input tokens, and is read out from the processor's output
    by a reconstruction head of its own width (one head shared by all labels).

    Args:
        label_modalities: the names fed to the processor (names absent from the data are
            ignored, as in the official).
        *args: the positional arguments of :class:`HiP`.
        **kwargs: the keyword arguments of :class:`HiP`.
    """

    _block_prefix = "perceiver_block"

    def __init__(self, *args: Any, label_modalities: Sequence[str], **kwargs: Any) -> None:
        if isinstance(label_modalities, str) or not isinstance(label_modalities, Sequence):
            raise invalid("label_modalities", "a sequence of modality names", label_modalities)
        self.label_modalities = tuple(label_modalities)
        super().__init__(*args, **kwargs)
        if not any(m not in self.label_modalities for m in self.modalities):
            raise invalid(
                "label_modalities",
                "names that leave at least one modality for the encoder",
                label_modalities,
            )
        width = self._processor_in_channels
        self.label_embed = nn.ModuleDict()
        self.label_unembed = nn.ModuleDict()
        self.label_pos_emb = nn.ParameterDict()
        for name, (n, c) in self.modalities.items():
            if name in self.label_modalities:
                self.label_embed[name] = nn.Linear(c, width)
                _init_linear(self.label_embed[name])
                self.label_unembed[name] = nn.Linear(width, c)
                _init_linear(self.label_unembed[name], scale=0.0)
                self.label_pos_emb[name] = nn.Parameter(
                    _variance_scaling_(torch.empty(n, width), n)
                )
        self.label_head = HiPCrossAttention(
            self.num_z_channels[self.processor_index],
            width,
            num_heads=1,
            activation_name=self.activation_name,
        )

    @property
    def _processor_in_channels(self) -> int:
        return self.num_z_channels[self.processor_index - 1]

    def _encoded_modalities(self) -> dict[str, tuple[int, int]]:
        return {m: s for m, s in self.modalities.items() if m not in self.label_modalities}

    def check_inputs(self, inputs: Any) -> tuple[str, ...]:
        keys = super().check_inputs(inputs)
        if all(m in self.label_modalities for m in keys):
            raise invalid("inputs", "at least one modality besides the labels", ", ".join(keys))
        return keys

    def encode_labels(
        self, inputs: Mapping[str, torch.Tensor], names: Sequence[str]
    ) -> tuple[
        torch.Tensor, list[torch.Tensor], dict[str, torch.Tensor], torch.Tensor, GroupLayout
    ]:
        """The blocks up to the processor and the labels' read-out (checked ``names``).

        Returns:
            ``(z, hidden, labels, query, layout)``: the processor's output latents ``[B, G,
            Z, D]``, every block's output so far (the U-Net skips of the decoder half), the
            read-out ``[B, N_m, C_m]`` of every label modality in ``names``, the grouped
            position encodings (the reconstruction head's queries) and the layout.
        """
        labels = [m for m in names if m in self.label_modalities]
        encoded = [m for m in names if m not in self.label_modalities]
        z, query, layout = self.embed_and_group(inputs, encoded)
        key_mask = self.padding_mask(layout, z.device)
        hidden: list[torch.Tensor] = []
        label_out: dict[str, torch.Tensor] = {}
        for i in range(self.processor_index + 1):
            block = self.blocks[i]
            if i > 0:
                z = regroup(z, self.num_groups[i], self.regroup_type)
            if i == self.processor_index:
                label_query = {}
                for m in labels:
                    pos = self.label_pos_emb[m].unsqueeze(0).expand(z.shape[0], -1, -1)
                    label_query[m] = pos.unsqueeze(1)
                    z = torch.cat([z, (self.label_embed[m](inputs[m]) + pos).unsqueeze(1)], 2)
            mask = key_mask.expand(z.shape[0], -1, -1) if i == 0 and key_mask is not None else None
            z = block(z, key_mask=mask)
            hidden.append(z)
        for m, q in label_query.items():
            label_out[m] = self.label_unembed[m](self.label_head(z, query_inputs=q)[:, 0])
        return z, hidden, label_out, query, layout

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        names = self.check_inputs(inputs)
        encoded = [m for m in names if m not in self.label_modalities]
        z, hidden, label_out, query, layout = self.encode_labels(inputs, names)
        for i in range(self.processor_index + 1, self.num_blocks):
            z = regroup(z, self.num_groups[i], self.regroup_type)
            z = self.blocks[i](z, residual=hidden[self.num_blocks - i - 1])
            hidden.append(z)
        recon = self.reconstruct(z, query)
        tokens = ungroup_modalities(recon, self.layout_tensors(layout, z.device)[1])
        out, start = {}, 0
        for m in encoded:
            n = self.modalities[m][0]
            out[m] = self.unembed[m](tokens[:, start : start + n])
            start += n
        out.update(label_out)
        return {"input_reconstruction": out, "latents": _official_ungroup(z, layout, encoded)}


# -- factories --------------------------------------------------------------------------------


def _build(variant: str, cls: type[HiP] = HiP, **kwargs: Any) -> HiP:
    if kwargs.get("modalities") is None and kwargs.get("datasets") is None:
        kwargs.pop("modalities", None)
        kwargs["datasets"] = OFFICIAL_TEST_DATASETS
    return cls(**{**VARIANTS[variant], **_SHARED_DEFAULTS, **kwargs})


def hip_16(**kwargs: Any) -> HiP:
    """HiP-16 (the official variant ``"16"``: 7 blocks, 16 groups at the ends).

    Args:
        **kwargs: ``modalities=`` or ``datasets=`` (default: the official test's mock
            datasets, where the parameter count is the published 99,224,996) and overrides of
            any :class:`HiP` argument; the shared defaults are the official test's
            (``num_position_encoding_channels=512``, ``"reshape"``, ``"sq_relu"``, no dropout
            or drop path).
    """
    return _build("16", **kwargs)


def hip_256(**kwargs: Any) -> HiP:
    """HiP-256 (variant ``"256"``: 11 blocks, 256 groups at the ends; 95,585,188 parameters on
    the official test's datasets). Arguments as :func:`hip_16`."""
    return _build("256", **kwargs)


def hip_mini(**kwargs: Any) -> HiP:
    """HiP-Mini (variant ``"Mini"``: 3 blocks; 18,709,668 parameters on the official test's
    datasets). Arguments as :func:`hip_16`."""
    return _build("Mini", **kwargs)


def hip_16x3(**kwargs: Any) -> HiP:
    """HiP-16x3 (variant ``"16x3"``: 3 blocks, an 18-layer processor). Arguments as
    :func:`hip_16`."""
    return _build("16x3", **kwargs)


def hip_class_bottleneck_mini(
    label_modalities: Sequence[str] = OFFICIAL_TEST_LABEL_MODALITIES, **kwargs: Any
) -> HiPClassBottleneck:
    """:class:`HiPClassBottleneck` with the Mini variant (21,114,788 parameters on the official
    test's datasets and label modalities). Arguments as :func:`hip_16`."""
    model = _build("Mini", HiPClassBottleneck, label_modalities=label_modalities, **kwargs)
    assert isinstance(model, HiPClassBottleneck)
    return model


# -- the official parameters ------------------------------------------------------------------


class HaikuParamsError(GroupingValueError):
    """A Haiku parameter tree does not fit the model (missing, mis-shaped or unused entries)."""


def _linear_entries(path: str, prefix: str, linear: nn.Linear) -> dict[str, tuple[str, str, bool]]:
    out = {f"{prefix}.weight": (path, "w", True)}
    if linear.bias is not None:
        out[f"{prefix}.bias"] = (path, "b", False)
    return out


def _norm_entries(path: str, prefix: str) -> dict[str, tuple[str, str, bool]]:
    return {f"{prefix}.weight": (path, "scale", False), f"{prefix}.bias": (path, "offset", False)}


def _cross_attention_entries(path: str, prefix: str, mod: HiPCrossAttention) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if mod.query_inputs is not None:
        out[f"{prefix}.query_inputs"] = (f"{path}/query_inputs", "pos_embs", False)
    if mod.pre_attention_residual_linear is not None:
        out.update(
            _linear_entries(
                f"{path}/pre_attention_residual_linear",
                f"{prefix}.pre_attention_residual_linear",
                mod.pre_attention_residual_linear,
            )
        )
    out.update(_norm_entries(f"{path}/layer_norm", f"{prefix}.norm_q"))
    out.update(_norm_entries(f"{path}/layer_norm_1", f"{prefix}.norm_kv"))
    out.update(_norm_entries(f"{path}/layer_norm_2", f"{prefix}.norm_mlp"))
    for ours, theirs in (
        ("q", "query"),
        ("k", "key"),
        ("v", "value"),
        ("proj", "attention_output"),
    ):
        out.update(
            _linear_entries(
                f"{path}/attention/{theirs}_linear",
                f"{prefix}.attn.{ours}",
                getattr(mod.attn, ours),
            )
        )
    out.update(_linear_entries(f"{path}/dense/mlp_hidden_linear", f"{prefix}.mlp.fc1", mod.mlp.fc1))
    out.update(_linear_entries(f"{path}/dense/mlp_output_linear", f"{prefix}.mlp.fc2", mod.mlp.fc2))
    return out


def haiku_names(model: HiP, root: str = "perceiver") -> dict[str, tuple[str, str, bool]]:
    """Where every parameter of ``model`` sits in the official Haiku tree.

    Returns:
        ``{torch name: (Haiku module path, parameter name, transposed)}``; ``transposed`` is
        True for linear weights (Haiku stores ``[in, out]``, torch ``[out, in]``).
    """
    out: dict[str, Any] = {}
    for name in model.embed:
        out.update(
            _linear_entries(
                f"{root}/embedder/~embed/embed_{name}", f"embed.{name}", model.embed[name]
            )
        )
        out.update(
            _linear_entries(
                f"{root}/embedder/~unembed/unembed_{name}", f"unembed.{name}", model.unembed[name]
            )
        )
        out[f"pos_emb.{name}"] = (f"{root}/position_encoder/pos_emb_mae_{name}", "pos_embs", False)
    for k, linear in enumerate(model.position_encoding_linear):
        suffix = "" if k == 0 else f"_{k}"
        out.update(
            _linear_entries(
                f"{root}/position_encoder/position_encoding_linear{suffix}",
                f"position_encoding_linear.{k}",
                linear,
            )
        )
    for i, block in enumerate(model.blocks):
        path = f"{root}/{model._block_prefix}_{i}/~"
        out.update(
            _cross_attention_entries(
                f"{path}/hi_p_cross_attention", f"blocks.{i}.projector", block.projector
            )
        )
        for j, layer in enumerate(block.self_attends):
            p, t = f"{path}/self_attend_id_{j}", f"blocks.{i}.self_attends.{j}"
            out.update(_norm_entries(f"{p}/layer_norm", f"{t}.norm1"))
            out.update(_norm_entries(f"{p}/layer_norm_1", f"{t}.norm2"))
            for ours, theirs in (
                ("q", "query"),
                ("k", "key"),
                ("v", "value"),
                ("proj", "attention_output"),
            ):
                out.update(
                    _linear_entries(
                        f"{p}/attention/{theirs}_linear",
                        f"{t}.attn.{ours}",
                        getattr(layer.attn, ours),
                    )
                )
            out.update(
                _linear_entries(f"{p}/dense/mlp_hidden_linear", f"{t}.mlp.fc1", layer.mlp.fc1)
            )
            out.update(
                _linear_entries(f"{p}/dense/mlp_output_linear", f"{t}.mlp.fc2", layer.mlp.fc2)
            )
    head = "reconstruction_head"
    if isinstance(model, HiPClassBottleneck):
        head = "reconstruction_head_1"  # the label head is created first
        out.update(
            _cross_attention_entries(
                f"{root}/reconstruction_head/hi_p_cross_attention", "label_head", model.label_head
            )
        )
        for ds, mods in model.datasets.items():
            labels = [m for m in mods if m in model.label_modalities]
            for k, name in enumerate(labels, start=1):
                entries = {
                    **_linear_entries(
                        f"{root}/embedder_{k}/~embed/embed_{name}",
                        f"label_embed.{name}",
                        model.label_embed[name],
                    ),
                    **_linear_entries(
                        f"{root}/embedder_{k}/~unembed/unembed_{name}",
                        f"label_unembed.{name}",
                        model.label_unembed[name],
                    ),
                    f"label_pos_emb.{name}": (
                        f"{root}/position_encoder_{k}/pos_emb_mae_{name}",
                        "pos_embs",
                        False,
                    ),
                }
                for key, where in entries.items():
                    if out.setdefault(key, where) != where:
                        raise HaikuParamsError(
                            f"datasets: expected label {name!r} at one input position in every "
                            f"dataset (the official names its modules by position), received it "
                            f"at another in {ds!r}"
                        )
    out.update(
        _cross_attention_entries(
            f"{root}/{head}/hi_p_cross_attention", "reconstruction_head", model.reconstruction_head
        )
    )
    return out


def convert_haiku_params(
    params: Mapping[str, Mapping[str, Any]], model: HiP, *, strict: bool = True
) -> dict[str, torch.Tensor]:
    """The official parameter tree as ``model``'s state dict: a pure conversion (as timm's
    ``checkpoint_filter_fn``; ``model`` is only read, for the names of :func:`haiku_names` and
    the shapes and dtypes of its parameters).

    Args:
        params: what ``hk.transform(...).init`` returns: ``{module path: {name: array}}``
            (numpy or JAX arrays; Haiku linear weights ``[in, out]``, transposed here).
        model: a :class:`HiP` or :class:`HiPClassBottleneck` built with the official
            arguments and the same modalities / datasets.
        strict: also refuse entries of ``params`` that the model has no place for.

    Returns:
        ``{torch name: tensor}``, every entry of ``model.state_dict()``, in its dtype.

    Raises:
        HaikuParamsError: a missing or mis-shaped entry (named, with the expected and received
            shapes), or with ``strict``, an unused one.
    """
    if not isinstance(params, Mapping):
        raise HaikuParamsError(
            f"params: expected a mapping of Haiku module paths to parameters, received "
            f"{type(params).__name__}"
        )
    names = haiku_names(model)
    state = model.state_dict()
    new = {}
    for key, (path, name, transposed) in names.items():
        if path not in params or name not in params[path]:
            raise HaikuParamsError(
                f"params: expected an entry {path!r} / {name!r} (for {key}), received a tree "
                "without it"
            )
        value = torch.as_tensor(np.asarray(params[path][name]), dtype=state[key].dtype)
        if transposed:
            value = value.T
        if tuple(value.shape) != tuple(state[key].shape):
            expected = tuple(state[key].shape[::-1] if transposed else state[key].shape)
            raise HaikuParamsError(
                f"params[{path!r}][{name!r}]: expected shape {expected} (for {key}), received "
                f"{tuple(np.shape(params[path][name]))}"
            )
        new[key] = value.contiguous()
    if strict:
        used = {(p, n) for p, n, _ in names.values()}
        extra = sorted(f"{p} / {n}" for p in params for n in params[p] if (p, n) not in used)
        if extra:
            raise HaikuParamsError(
                f"params: expected only entries this model uses, received {len(extra)} more, "
                f"e.g. {extra[:3]} (other modalities or another variant?); strict=False ignores "
                "them"
            )
    missing = set(state) - set(new)
    assert not missing, f"haiku_names misses {sorted(missing)}"
    return new


def load_haiku_params(
    model: HiP, params: Mapping[str, Mapping[str, Any]], *, strict: bool = True
) -> HiP:
    """Load the official parameter tree into ``model`` (in place; returns it):
    ``model.load_state_dict(convert_haiku_params(params, model, strict=strict))``.

    Args:
        model: a :class:`HiP` or :class:`HiPClassBottleneck` built with the official
            arguments and the same modalities / datasets.
        params: what ``hk.transform(...).init`` returns (see :func:`convert_haiku_params`).
        strict: also refuse entries of ``params`` that the model has no place for.

    Raises:
        HaikuParamsError: see :func:`convert_haiku_params`.

    Example:
        >>> import numpy as np
        >>> m = HiP((2, 1, 2), (1, 1, 1), (4, 4, 4), (8, 8, 8), (1, 1, 1), (2, 2, 2),
        ...         (1, 1, 1), (2, 2, 2), 8, modalities={"x": (6, 3)})
        >>> tree = {}
        >>> for name, (path, key, t) in haiku_names(m).items():
        ...     value = m.state_dict()[name].numpy()
        ...     tree.setdefault(path, {})[key] = value.T if t else value
        >>> load_haiku_params(m, tree) is m
        True
    """
    model.load_state_dict(convert_haiku_params(params, model, strict=strict))
    return model


# -- group-wise masked auto-encoding ----------------------------------------------------------


@dataclass(frozen=True)
class HiPMAEConfig:
    """A :class:`HiPMAE`'s input and what a group-wise masking step needs to know of it (no
    weights): ``model.config``, and the config its preparer carries.

    Attributes:
        num_groups: groups of the first level ``G``.
        group_len: their length ``L``.
        padding_slots: the flat slots ``g * L + n`` that hold padding (a tuple, so that the
            config stays hashable and cheap to pickle).
        img_size: the images read, as given.
        in_chans: the images read, as given.
        variant: the official variant the HiP was built from, if a factory built it.
    """

    num_groups: int
    group_len: int
    padding_slots: tuple[int, ...] = ()
    img_size: int | tuple[int, int] = 224
    in_chans: int = 3
    variant: str | None = None


@dataclass(frozen=True)
class HiPStep(Step):
    """The visible and the masked slots of every group (built by :func:`prepare_hip`).

    Slots are positions inside a group, ``0 <= slot < L``. Index tensors are ``[1, G, K]`` for
    one mask shared by the batch and ``[B, G, K]`` per sample.

    Attributes:
        visible: int64 ``[1 or B, G, K]``: the slots the encoder reads, ascending.
        masked: int64 ``[1 or B, G, L - K]``: the slots reconstructed and scored, ascending.
        scored: bool ``[1 or B, G, L - K]``: True where a masked slot holds a real token (not
            padding); the loss is taken there.
        batch: the batch of per-sample masks, None for a shared mask.
    """

    visible: torch.Tensor
    masked: torch.Tensor
    scored: torch.Tensor
    batch: int | None


def prepare_hip(config: HiPMAEConfig, mask: Any, *, batch: int | None = None) -> HiPStep:
    """Turn group-wise masks into the gather indices of a masked HiP pass, on the CPU.

    The slot arithmetic is the core's :func:`~grouping.core.groupwise_slots` (which checks the
    mask with :func:`~grouping.core.check_mask`); this only makes tensors of it.

    Args:
        config: the model's :class:`HiPMAEConfig`.
        mask: bool ``[G, L]`` (shared) or ``[B, G, L]`` (per sample), True = visible, with the
            same number ``K`` of visible slots in every group (``groupwise_masks`` draws such
            masks), ``1 <= K < L``. There is no step of "nothing masked": call the model with
            ``mask=None`` for that (the unmasked pass).
        batch: the batch the step is for (checked against a per-sample mask).

    Returns:
        A :class:`HiPStep`.

    Example:
        >>> cfg = HiPMAEConfig(num_groups=2, group_len=4)
        >>> step = prepare_hip(cfg, np.array([[1, 0, 0, 1], [0, 1, 1, 0]], bool))
        >>> step.visible.tolist(), step.masked.tolist()
        ([[[0, 3], [1, 2]]], [[[1, 2], [0, 3]]])
    """
    slots = groupwise_slots(
        mask,
        (config.num_groups, config.group_len),
        padding_slots=config.padding_slots,
        batch=batch,
    )
    return HiPStep(
        visible=torch.from_numpy(slots.visible),
        masked=torch.from_numpy(slots.masked),
        scored=torch.from_numpy(slots.scored),
        batch=None if slots.shared else int(slots.visible.shape[0]),
    )


@dataclass(frozen=True)
class HiPPreparer(Preparer):
    """HiP's preparer: a draw is bool ``[G, L]`` with the same keep count in every group."""

    def draw_mask(self, mask_ratio: float, *, rng: Any = None) -> NDArray[np.bool_]:
        cfg = self.config
        return groupwise_masks(1, cfg.num_groups, cfg.group_len, mask_ratio, rng=as_rng(rng))[0]


def _pixel_tokens(images: Any, input_shape: tuple[int, ...]) -> torch.Tensor:
    """``[B, C, H, W] -> [B, H * W, C]`` raw-pixel tokens (row-major), checked."""
    if (
        not isinstance(images, torch.Tensor)
        or images.dim() != 4
        or tuple(images.shape[1:]) != input_shape
    ):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise invalid("images", f"a tensor [B, {', '.join(map(str, input_shape))}]", shape)
    return images.flatten(2).transpose(1, 2)


class HiPMAE(nn.Module):
    """Group-wise masked auto-encoding of images with a :class:`HiP` (the paper's pretraining).

    An image ``[B, C, H, W]`` is read as ``H * W`` raw-pixel tokens of ``C`` channels (row-major),
    one modality ``"image"``, grouped as the HiP groups it. A step (:func:`prepare_hip`) keeps
    the same number of tokens in every group: the first cross-attention reads only those, the
    reconstruction head decodes only the masked slots (queries: their position encodings), and
    the loss is the MSE over the masked real tokens.

    Args:
        hip: a HiP built with ``modalities={"image": (H * W, C)}``.
        img_size: ``(H, W)`` or an int.
        in_chans: ``C``.

    Shape:
        ``forward(images [B, C, H, W], mask=None) -> (loss, pred, target)``: with a
        :class:`HiPStep`, ``pred`` and ``target`` are ``[B, G, L - K, C]`` at the masked slots;
        without one (nothing masked), ``[B, H * W, C]`` for every pixel.
    """

    def __init__(
        self,
        hip: HiP,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        *,
        variant: str | None = None,
    ) -> None:
        super().__init__()
        size = _image_size(img_size)
        self.img_size = size
        self.in_chans = check_int("in_chans", in_chans, minimum=1)
        expected = {"image": (size[0] * size[1], self.in_chans)}
        if not isinstance(hip, HiP) or type(hip) is not HiP or hip.modalities != expected:
            raise invalid(
                "hip", f"a HiP built with modalities={expected}", getattr(hip, "modalities", hip)
            )
        self.hip = hip
        layout = hip.layout([size[0] * size[1]])
        self.config = HiPMAEConfig(
            num_groups=layout.num_groups,
            group_len=layout.group_len,
            padding_slots=tuple(int(s) for s in np.flatnonzero(layout.padding)),
            img_size=img_size if isinstance(img_size, int) else size,
            in_chans=self.in_chans,
            variant=variant,
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one input."""
        return (self.in_chans, *self.img_size)

    @property
    def mask_grid(self) -> tuple[int, int]:
        """``(G, L)``: the groups masks are drawn on."""
        return (self.config.num_groups, self.config.group_len)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """What ``grouping pretrain --save`` writes: HiP has no separate encoder (its blocks
        encode and decode in one hierarchy), so this is the whole ``state_dict``."""
        return self.state_dict()

    def preparer(self, **options: Any) -> HiPPreparer:
        """The picklable ``prepare`` (no weights) for DataLoader workers; HiP has no solver
        settings, so ``options`` must be empty."""
        if options:
            raise invalid(
                "options", "no solver settings (HiP has no grouping to solve)", sorted(options)
            )
        return HiPPreparer(prepare_hip, self.config, self.mask_grid)

    def prepare(self, mask: Any, *, batch: int | None = None, device: Any = None) -> HiPStep:
        """:func:`prepare_hip`, moved to ``device``."""
        step = prepare_hip(self.config, mask, batch=batch)
        return step if device is None else step.to(device)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, H * W, C]`` raw-pixel tokens, checked."""
        return _pixel_tokens(images, self.input_shape)

    def forward(self, images: torch.Tensor, mask: HiPStep | None = None) -> HiPMAEOutput:
        hip = self.hip
        tokens = self.tokens(images)
        if mask is None:
            pred = hip({"image": tokens})["input_reconstruction"]["image"]
            return HiPMAEOutput(F.mse_loss(pred, tokens), pred, tokens)
        if not isinstance(mask, HiPStep):
            raise invalid("mask", "a HiPStep (model.prepare(mask))", type(mask).__name__)
        mask.check(images.shape[0], images.device)
        if mask.visible.shape[1:2] != (self.config.num_groups,):
            raise invalid(
                "mask", f"a step for {self.config.num_groups} groups", tuple(mask.visible.shape)
            )
        z, query, layout = hip.embed_and_group({"image": tokens}, ("image",))
        key_mask = hip.padding_mask(layout, z.device)
        if key_mask is not None:
            key_mask = key_mask.expand(z.shape[0], -1, -1).gather(
                2, mask.visible.expand(z.shape[0], -1, -1)
            )
        latents = hip.process(gather_slots(z, mask.visible), key_mask)
        rec = hip.reconstruct(latents, gather_slots(query, mask.masked))
        pred = hip.unembed["image"](rec)
        index, _ = hip.layout_tensors(layout, z.device)
        target = gather_slots(group_modalities(tokens, index), mask.masked)
        weight = mask.scored.expand(z.shape[0], -1, -1).to(pred.dtype)
        err = ((pred - target) ** 2).mean(dim=-1)
        loss = (err * weight).sum() / weight.sum().clamp_min(1.0)
        return HiPMAEOutput(loss, pred, target)


def mae_hip(
    variant: str = "16", img_size: int | Sequence[int] = 224, in_chans: int = 3, **kwargs: Any
) -> HiPMAE:
    """A group-wise MAE on raw pixels with the official ``variant`` (``"16"``, ``"256"``,
    ``"Mini"``, ``"16x3"``): what ``grouping pretrain --model hip_16`` trains.

    Args:
        variant: a key of :data:`VARIANTS`.
        img_size: image size (an int or ``(H, W)``); ``H * W`` pixel tokens.
        in_chans: channels per pixel.
        **kwargs: overrides of any :class:`HiP` argument (not the modalities).
    """
    if variant not in VARIANTS:
        raise invalid("variant", f"one of {sorted(VARIANTS)}", variant)
    size = _image_size(img_size)
    for key in ("modalities", "datasets"):
        if key in kwargs:
            raise invalid(key, "not set: the MAE reads one image modality", kwargs[key])
    model = _build(variant, modalities={"image": (size[0] * size[1], in_chans)}, **kwargs)
    return HiPMAE(model, img_size if isinstance(img_size, int) else size, in_chans, variant=variant)


# -- image classification ---------------------------------------------------------------------


def _image_size(img_size: Any) -> tuple[int, int]:
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(size) != 2 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size
    ):
        raise invalid("img_size", "an int or (H, W), ints >= 1", img_size)
    return size  # type: ignore[return-value]


@dataclass(frozen=True)
class HiPClassifierConfig(HiPConfig):
    """A :class:`HiPClassifier`'s arguments (``model.config``): the HiP's and the images'.

    Attributes:
        img_size: the images read, as given.
        in_chans: their channels.
        num_classes: the classes.
        variant: the official variant the HiP was built from, if a factory built it.
    """

    img_size: int | tuple[int, int] = 224
    in_chans: int = 3
    num_classes: int = 1000
    variant: str | None = None


class HiPClassifier(HiPClassBottleneck):
    """An image classifier on a HiP: the class bottleneck's label read-out is the logits.

    Images ``[B, C, H, W]`` are read as :class:`HiPMAE` reads them (``H * W`` raw-pixel tokens
    of ``C`` channels, one modality ``"image"``). A label modality ``"label"`` of one token and
    ``num_classes`` channels enters the processor as :class:`HiPClassBottleneck`'s labels do
    (embedded, with its own position encoding), fed zeros: the label is what is predicted, as
    a masked label is in the official class bottleneck. Its read-out after the processor
    (``label_head``, ``label_unembed``) is the logits.

    The decoder half (the blocks after the processor, the reconstruction head and the image's
    unembedding) reconstructs the input and never reaches the logits, so it is not kept: its
    parameters would get no gradient (an error under DDP) and take memory. Every other name is
    :class:`HiPMAE`'s without its ``hip.`` prefix, so a HiP pretraining checkpoint loads with
    only the label modules (``label_*``) new (:meth:`pretrained_state`).

    Args:
        img_size: ``(H, W)`` or an int.
        in_chans: ``C``.
        num_classes: the classes (the label modality's channels), ``>= 1``.
        variant: the official variant the HiP was built from, if a factory built it.
        **kwargs: the :class:`HiP` arguments (not ``modalities``, ``datasets`` or
            ``label_modalities``).

    Shape:
        ``forward(images [B, C, H, W]) -> logits [B, num_classes]``;
        ``forward_features(images) -> [B, D]``, the mean of the processor's output latents
        over its groups and latents (``D`` = the processor's width).
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        *,
        variant: str | None = None,
        **kwargs: Any,
    ) -> None:
        size = _image_size(img_size)
        in_chans = check_int("in_chans", in_chans, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        for key in ("modalities", "datasets", "label_modalities"):
            if key in kwargs:
                raise invalid(
                    key, "not set: the classifier reads images and one label", kwargs[key]
                )
        modalities = {"image": (size[0] * size[1], in_chans), "label": (1, num_classes)}
        super().__init__(modalities=modalities, label_modalities=("label",), **kwargs)
        self.img_size = size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.variant = variant
        base = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        self.config = HiPClassifierConfig(
            **base,
            img_size=img_size if isinstance(img_size, int) else size,
            in_chans=in_chans,
            num_classes=num_classes,
            variant=variant,
        )
        del self.blocks[self.processor_index + 1 :]  # the decoder half: never on the logits' path
        del self.reconstruction_head
        del self.unembed["image"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one input."""
        return (self.in_chans, *self.img_size)

    @property
    def decoder_prefixes(self) -> tuple[str, ...]:
        """The names (prefixes) of a whole HiP's decoder half, which this classifier has not."""
        later = range(self.processor_index + 1, self.num_blocks)
        return (*(f"blocks.{i}." for i in later), "reconstruction_head.", "unembed.")

    def pretrained_state(
        self, state: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], list[str]]:
        """A HiP pretraining state_dict in this classifier's names.

        Args:
            state: a :class:`HiPMAE`'s ``state_dict`` (what ``grouping pretrain --save``
                writes for HiP: names ``hip.*``), or a plain :class:`HiP`'s or a classifier's
                (no prefix).

        Returns:
            ``(state, unused)``: the state without the ``hip.`` prefix and without the decoder
            half, and the decoder half's names that were set apart.
        """
        prefix = "hip." if state and all(k.startswith("hip.") for k in state) else ""
        out, unused = {}, []
        for key, value in state.items():
            name = key[len(prefix) :]
            if name.startswith(self.decoder_prefixes) and name not in self.state_dict():
                unused.append(key)
            else:
                out[name] = value
        return out, unused

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(latents [B, G, Z, D], logits [B, num_classes])`` of images ``[B, C, H, W]``."""
        tokens = _pixel_tokens(images, self.input_shape)
        label = tokens.new_zeros(tokens.shape[0], 1, self.num_classes)
        z, _, out, _, _ = self.encode_labels({"image": tokens, "label": label}, ("image", "label"))
        return z, out["label"][:, 0]

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The mean of the processor's output latents, ``[B, D]`` float: what probes read."""
        return self.encode_images(images)[0].mean(dim=(1, 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The logits ``[B, num_classes]`` of images ``[B, C, H, W]``."""
        return self.encode_images(images)[1]


def hip_classifier(
    variant: str = "Mini",
    img_size: int | Sequence[int] = 224,
    in_chans: int = 3,
    num_classes: int = 1000,
    **kwargs: Any,
) -> HiPClassifier:
    """A :class:`HiPClassifier` of the official ``variant`` (``"16"``, ``"256"``, ``"Mini"``,
    ``"16x3"``): the classifier ``grouping finetune`` builds around a ``hip_*`` pretraining
    model's HiP (same arguments as :func:`mae_hip`, plus ``num_classes``).

    Example:
        >>> net = hip_classifier("Mini", img_size=8, num_classes=3)
        >>> net(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 3])
    """
    if variant not in VARIANTS:
        raise invalid("variant", f"one of {sorted(VARIANTS)}", variant)
    args = {**VARIANTS[variant], **_SHARED_DEFAULTS, **kwargs}
    return HiPClassifier(img_size, in_chans, num_classes, variant=variant, **args)
