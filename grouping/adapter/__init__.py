"""The torch adapter: grouping plans turned into tensors, masks and grouped window attention.

One file per concern: ``layout`` (plan -> gather indices, attention masks, relative position
indices), ``ops`` (group / ungroup), ``masks`` (additive, FlexAttention and varlen forms),
``attention`` (:class:`GroupedWindowAttention`). Hiera's mask units and HiP's groups will sit
beside them.
"""

from .attention import (
    ATTENTION_IMPLS,
    AUTO_ATTENTION_IMPL,
    GroupedWindowAttention,
    default_attention_impl,
    grouped_attention,
    relative_position_bias,
)
from .layout import (
    MODES,
    WindowLayout,
    build_attention_mask,
    relative_position_index,
    window_layout,
)
from .masks import VarlenOffsets, additive_mask, block_mask, token_attention_mask, varlen_offsets
from .ops import check_tokens, group_tokens, ungroup_tokens

__all__ = [
    "ATTENTION_IMPLS",
    "AUTO_ATTENTION_IMPL",
    "MODES",
    "GroupedWindowAttention",
    "VarlenOffsets",
    "WindowLayout",
    "additive_mask",
    "block_mask",
    "build_attention_mask",
    "check_tokens",
    "default_attention_impl",
    "group_tokens",
    "grouped_attention",
    "relative_position_bias",
    "relative_position_index",
    "token_attention_mask",
    "ungroup_tokens",
    "varlen_offsets",
    "window_layout",
]
