"""The torch adapter: grouping plans turned into tensors, masks and grouped window attention.

One file per concern: ``layout`` (plan -> gather indices, attention masks, relative position
indices), ``ops`` (group / ungroup visible windows), ``masks`` (additive, FlexAttention and
varlen forms), ``attention`` (:class:`GroupedWindowAttention`, and the dense window attention
it is measured against), ``tensors`` (moving nested structures of tensors), ``groups`` (HiP's
groups of concatenated modalities: group, ungroup, regroup, gather slots). Hiera's mask units
will sit beside them.
"""

from .attention import (
    ATTENTION_IMPLS,
    AUTO_ATTENTION_IMPL,
    GroupedWindowAttention,
    default_attention_impl,
    dense_window_attention,
    grouped_attention,
    relative_position_bias,
    shifted_window_mask,
    window_relative_index,
)
from .groups import gather_slots, group_modalities, regroup, ungroup_modalities
from .layout import (
    MODES,
    WindowLayout,
    build_attention_mask,
    relative_position_index,
    window_layout,
)
from .masks import VarlenOffsets, additive_mask, block_mask, token_attention_mask, varlen_offsets
from .ops import check_tokens, group_tokens, ungroup_tokens
from .tensors import PackedTensors, first_tensor, map_tensors, pack_tensors

__all__ = [
    "ATTENTION_IMPLS",
    "AUTO_ATTENTION_IMPL",
    "MODES",
    "GroupedWindowAttention",
    "PackedTensors",
    "VarlenOffsets",
    "WindowLayout",
    "additive_mask",
    "block_mask",
    "build_attention_mask",
    "check_tokens",
    "default_attention_impl",
    "dense_window_attention",
    "first_tensor",
    "gather_slots",
    "group_modalities",
    "group_tokens",
    "grouped_attention",
    "map_tensors",
    "pack_tensors",
    "regroup",
    "relative_position_bias",
    "relative_position_index",
    "shifted_window_mask",
    "token_attention_mask",
    "ungroup_modalities",
    "ungroup_tokens",
    "varlen_offsets",
    "window_layout",
    "window_relative_index",
]
