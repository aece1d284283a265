"""The parts of the fine-tuning and probing recipes that MAE, Hiera and GreenMIM are compared
with, written small: layer-wise learning-rate decay, Mixup / CutMix, the soft-target and
label-smoothing losses, LARS, MAE's linear-probe head and DINO's weighted k-NN classifier.

Each part follows one published implementation, and ``tests/test_recipe.py`` checks it against
outputs recorded from that code (``tests/fixtures/record_recipe.py``):

* :func:`param_groups_lrd`: MAE's ``util/lr_decay.py`` (after BEiT). Layer 0 is the
  embeddings, block ``i`` is layer ``i + 1``, everything after the blocks is layer
  ``num_layers``; a group's ``lr_scale`` is ``layer_decay ** (num_layers - layer_id)``.
  :func:`layer_ids` places every parameter of each family in that order (see its table).
* :class:`Mixup`: timm's ``timm.data.mixup.Mixup`` in mode ``"batch"``, with the randomness
  drawn from a ``numpy.random.Generator`` instead of the global ``numpy.random``.
* :func:`soft_target_cross_entropy`, :func:`label_smoothing_cross_entropy`: timm's
  ``SoftTargetCrossEntropy`` and ``LabelSmoothingCrossEntropy``.
* :class:`LARS`: MAE's ``util/lars.py`` (from MoCo v3), the linear probe's optimizer.
* :class:`LinearProbeHead`: MAE ``main_linprobe.py``'s ``BatchNorm1d`` + ``Linear`` head.
* :func:`knn_classify`: DINO ``eval_knn.py``'s ``knn_classifier``.

References:
    He, Kaiming, et al. "Masked Autoencoders Are Scalable Vision Learners." CVPR 2022.
    Bao, Hangbo, et al. "BEiT: BERT Pre-Training of Image Transformers." ICLR 2022.
    Xie, Zhenda, et al. "SimMIM: A Simple Framework for Masked Image Modeling." CVPR 2022.
    Zhang, Hongyi, et al. "mixup: Beyond Empirical Risk Minimization." ICLR 2018.
    Yun, Sangdoo, et al. "CutMix: Regularization Strategy to Train Strong Classifiers with
    Localizable Features." ICCV 2019. You, Yang, et al. "Large Batch Training of
    Convolutional Networks." 2017. Caron, Mathilde, et al. "Emerging Properties in
    Self-Supervised Vision Transformers." ICCV 2021 (DINO).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import as_rng, check_int, invalid

__all__ = [
    "FAMILIES",
    "LARS",
    "Family",
    "KNNResult",
    "LabelSmoothingCrossEntropy",
    "LinearProbeHead",
    "MixParams",
    "MixedBatch",
    "Mixup",
    "SoftTargetCrossEntropy",
    "box_lam",
    "cutmix_box",
    "finetune_loss",
    "knn_classify",
    "label_smoothing_cross_entropy",
    "layer_ids",
    "mix_images",
    "mixup_target",
    "model_family",
    "num_layers",
    "param_groups_lrd",
    "soft_target_cross_entropy",
]

#: The model families whose parameter names :func:`layer_ids` knows.
Family = Literal["swin", "hiera", "hip", "perceiver", "vit"]
FAMILIES: tuple[str, ...] = ("swin", "hiera", "hip", "perceiver", "vit")


def _check_real(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise invalid(name, f"a float in {interval}", value)
    v = float(value)
    if not (low < v if low_open else low <= v) or not v <= high:
        raise invalid(name, f"a float in {interval}", value)
    return v


# -- layer-wise learning-rate decay --------------------------------------------------------------


def _under(name: str, prefixes: Iterable[str]) -> bool:
    """True if ``name`` is one of ``prefixes`` or a parameter below one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _max_index(names: Iterable[str], pattern: str) -> int:
    """One more than the largest index ``pattern`` (one group) captures in ``names``."""
    found = [int(m.group(1)) for n in names if (m := re.match(pattern, n))]
    return max(found) + 1 if found else 0


class _Rule(NamedTuple):
    """A family's layer order: ``layer_of(name)`` (None if unknown) and ``num_layers``."""

    layer_of: Callable[[str], int | None]
    num_layers: int
    names: str  # the known names, for the error message


def _swin_rule(names: list[str]) -> _Rule:
    # per-stage depths from the names: layers.{s}.blocks.{b}.*
    stages = max(_max_index(names, r"layers\.(\d+)\."), 1)
    depths = [_max_index(names, rf"layers\.{s}\.blocks\.(\d+)\.") for s in range(stages)]
    start = [sum(depths[:s]) for s in range(stages)]  # blocks before stage s
    last = sum(depths) + 1

    def layer_of(name: str) -> int | None:
        if _under(name, ("patch_embed", "absolute_pos_embed")):
            return 0
        if m := re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", name):
            return start[int(m.group(1))] + int(m.group(2)) + 1
        if m := re.match(r"layers\.(\d+)\.downsample\.", name):
            # SimMIM's rule (GreenMIM fine-tunes with it): the merge that starts stage s is
            # the one that ends stage s - 1 in the original Swin, and shares the layer of
            # stage s - 1's last block
            return start[int(m.group(1))]
        if _under(name, ("norm", "head")):
            return last
        return None

    return _Rule(
        layer_of,
        last,
        "patch_embed.*, absolute_pos_embed, layers.{s}.blocks.{b}.*, layers.{s}.downsample.*, "
        "norm.*, head.*",
    )


def _blocks_rule(
    names: list[str],
    first: tuple[str, ...],
    heads: tuple[str, ...],
    *,
    blocks: str = "blocks",
    offset: int = 1,
    fixed: tuple[tuple[str, int], ...] = (),
) -> _Rule:
    """``first`` -> 0, ``fixed`` prefixes -> their ids, ``{blocks}.{i}.*`` -> ``i + offset``,
    ``heads`` -> ``num_layers = len(blocks) + offset``."""
    pattern = re.escape(blocks) + r"\.(\d+)\."
    last = _max_index(names, pattern) + offset

    def layer_of(name: str) -> int | None:
        if _under(name, first):
            return 0
        for prefix, layer in fixed:
            if _under(name, (prefix,)):
                return layer
        if m := re.match(pattern, name):
            return int(m.group(1)) + offset
        if _under(name, heads):
            return last
        return None

    known = [*first, *(p for p, _ in fixed), blocks + ".{i}", *heads]
    return _Rule(layer_of, last, ", ".join(f"{n}.*" for n in known))


def _rule(names: list[str], family: str) -> _Rule:
    if family == "swin":
        return _swin_rule(names)
    if family == "perceiver":
        return _blocks_rule(
            names,
            ("input_preprocessor", "encoder.latents"),
            ("decoder", "output_postprocessor", "head", "image_head", "audio_head", "label_head"),
            blocks="encoder.self_attends",
            offset=2,
            fixed=(("encoder.cross_attention", 1),),
        )
    if family == "hiera":
        first = ("pos_embed", "pos_embed_spatial", "pos_embed_temporal", "patch_embed")
        heads = ("norm", "head")
    elif family == "hip":
        first = ("embed", "pos_emb", "position_encoding_linear", "label_embed", "label_pos_emb")
        heads = ("unembed", "reconstruction_head", "label_head", "label_unembed", "head")
    else:  # vit: MAE's / timm's VisionTransformer
        first = ("cls_token", "pos_embed", "dist_token", "reg_token", "patch_embed")
        heads = ("norm", "fc_norm", "head", "head_dist")
    return _blocks_rule(names, first, heads)


def model_family(model: nn.Module) -> str:
    """The family whose layer order :func:`layer_ids` applies to ``model``.

    A :class:`~grouping.models.swin.SwinEncoder` is ``"swin"``, a
    :class:`~grouping.models.hiera.Hiera` ``"hiera"``, a :class:`~grouping.models.hip.HiP`
    ``"hip"``, a :class:`~grouping.models.perceiver.PerceiverIO` or
    :class:`~grouping.models.perceiver.MultimodalAutoencoder` ``"perceiver"``. Other modules
    (a classifier wrapping the Swin names, a timm ViT) need ``family=`` where asked.
    """
    from ..models.hiera import Hiera
    from ..models.hip import HiP
    from ..models.perceiver import MultimodalAutoencoder, PerceiverIO
    from ..models.swin import SwinEncoder

    for cls, family in (
        (SwinEncoder, "swin"),
        (Hiera, "hiera"),
        (HiP, "hip"),
        ((PerceiverIO, MultimodalAutoencoder), "perceiver"),
    ):
        if isinstance(model, cls):
            return family
    raise invalid(
        "model",
        "a SwinEncoder, Hiera, HiP, PerceiverIO or MultimodalAutoencoder",
        type(model).__name__,
        f"pass family= (one of {FAMILIES}) for a module with one of these families' "
        "parameter names, or layer_ids= to param_groups_lrd",
    )


def _family(model: nn.Module, family: str | None) -> str:
    if family is None:
        return model_family(model)
    if family not in FAMILIES:
        raise invalid("family", f"one of {FAMILIES} or None", family)
    return family


def _table(model: nn.Module, family: str | None) -> tuple[dict[str, int], int]:
    if not isinstance(model, nn.Module):
        raise invalid("model", "a torch.nn.Module", type(model).__name__)
    family = _family(model, family)
    names = [n for n, _ in model.named_parameters()]
    rule = _rule(names, family)
    ids = {}
    for name in names:
        layer = rule.layer_of(name)
        if layer is None:
            raise invalid(
                "model",
                f"parameters named as in the {family} family's layer order ({rule.names})",
                name,
                "fine-tune the encoder (not an MAE wrapper), or give param_groups_lrd "
                "layer_ids= for other names",
            )
        ids[name] = layer
    return ids, rule.num_layers


def layer_ids(model: nn.Module, *, family: Family | None = None) -> dict[str, int]:
    """The layer id of every parameter of ``model``, in MAE's layer-wise decay order.

    MAE's rule (``get_layer_id_for_vit``): layer 0 is the embeddings, block ``i`` is layer
    ``i + 1``, everything after the blocks is ``num_layers`` (:func:`num_layers`). Per family,
    on the names relative to ``model`` (block counts are read from the names of every
    parameter, trainable or frozen):

    * swin: ``patch_embed.*`` and ``absolute_pos_embed`` are 0; ``layers.{s}.blocks.{b}``
      is ``sum(depths[:s]) + b + 1``; ``layers.{s}.downsample`` is ``sum(depths[:s])``;
      ``norm`` and ``head`` are ``num_layers = sum(depths) + 1``.
    * hiera: ``pos_embed*`` and ``patch_embed.*`` are 0; ``blocks.{i}`` is ``i + 1``;
      ``norm`` and ``head`` are ``num_layers = len(blocks) + 1``.
    * hip: ``embed``, ``pos_emb``, ``position_encoding_linear``, ``label_embed`` and
      ``label_pos_emb`` are 0; ``blocks.{i}`` is ``i + 1``; ``unembed``,
      ``reconstruction_head``, ``label_head``, ``label_unembed`` and ``head`` are
      ``num_layers = len(blocks) + 1``.
    * perceiver: ``input_preprocessor`` and ``encoder.latents`` are 0;
      ``encoder.cross_attention`` is 1; ``encoder.self_attends.{i}`` is ``i + 2``;
      ``decoder``, ``output_postprocessor``, ``head`` and the multimodal autoencoder's
      ``image_head``, ``audio_head``, ``label_head`` are ``num_layers = len(self_attends) + 2``.
    * vit (MAE's / timm's ``VisionTransformer``): ``cls_token``, ``pos_embed``,
      ``dist_token``, ``reg_token`` and ``patch_embed.*`` are 0; ``blocks.{i}`` is ``i + 1``;
      ``norm``, ``fc_norm``, ``head`` and ``head_dist`` are ``num_layers = len(blocks) + 1``.

    Notes:
        Swin: the blocks are flattened over the stages, as SimMIM's ``get_swin_layer`` and
        timm do. The patch merging that current timm names ``layers.{s}.downsample`` (it
        starts stage ``s``) is SimMIM's ``layers.{s-1}.downsample`` (the original Swin ends
        stage ``s - 1`` with it); SimMIM gives it the layer of stage ``s - 1``'s last block,
        and so does this rule. GreenMIM fine-tunes with SimMIM's code (its ``ft_configs``).
        timm's own ``param_groups_layer_decay`` differs in two places: the merge joins stage
        ``s``'s first block and the final ``norm`` joins the last block (``tests/
        test_recipe.py`` pins both differences down).

        Perceiver IO repeats its self-attention block ``num_blocks`` times with shared
        weights; ``encoder.self_attends.{i}`` takes the id of its first use.

        HiP's class bottleneck embeds its labels into the processor block's latents; those
        embeddings are inputs (layer 0) and its label head an output (the last layer).

    Args:
        model: the module to fine-tune.
        family: one of :data:`FAMILIES`; None: :func:`model_family`.

    Returns:
        ``{parameter name: layer id}`` for every parameter (frozen ones too), in
        ``named_parameters`` order.

    Raises:
        GroupingValueError: a parameter the family's order does not place (named in the
            message), e.g. an MAE decoder's: fine-tune the encoder.

    Examples:
        >>> from grouping.models import hiera
        >>> ids = layer_ids(hiera.hiera_tiny_224(input_size=(64, 64), embed_dim=8,
        ...                                      stages=(1, 1, 1, 1)))
        >>> ids["pos_embed"], ids["blocks.0.attn.qkv.weight"], ids["blocks.3.mlp.fc1.bias"]
        (0, 1, 4)
        >>> ids["head.projection.weight"]
        5
    """
    return _table(model, family)[0]


def num_layers(model: nn.Module, *, family: Family | None = None) -> int:
    """MAE's ``num_layers`` of ``model``: the layer id of everything after the blocks (blocks
    + 1; Perceiver IO: self-attention layers + 2, counting the cross-attention). See
    :func:`layer_ids`."""
    return _table(model, family)[1]


def _default_no_weight_decay(model: nn.Module, family: str | None) -> tuple[set[str], set[str]]:
    """MAE's ``model.no_weight_decay()`` where the model has one, else the family's list."""
    names: set[str] = set()
    keywords: set[str] = set()
    if family == "swin":  # timm's and SimMIM's
        names, keywords = {"absolute_pos_embed"}, {"relative_position_bias_table"}
    elif family == "vit":  # timm's VisionTransformer.no_weight_decay()
        names = {"pos_embed", "cls_token", "dist_token"}
    elif family == "hiera":  # the official Hiera.no_weight_decay()
        names = {"pos_embed", "pos_embed_spatial", "pos_embed_temporal"}
    method = getattr(model, "no_weight_decay", None)
    if callable(method):
        names = set(method())
    return names, keywords


def param_groups_lrd(
    model: nn.Module,
    *,
    weight_decay: float,
    layer_decay: float,
    no_weight_decay: Iterable[str] | None = None,
    no_weight_decay_keywords: Iterable[str] | None = None,
    layer_ids: Mapping[str, int] | None = None,
    num_layers: int | None = None,
    family: Family | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for layer-wise learning-rate decay (MAE's
    ``param_groups_lrd``).

    Every trainable parameter goes to the group of its ``(layer id, decay or not)``; groups
    come in the order their first parameter has in ``named_parameters`` (MAE's). A parameter
    gets no weight decay if it has at most one dimension (norms, biases), its name ends in
    ``.bias``, is in ``no_weight_decay``, or contains one of ``no_weight_decay_keywords``.
    The caller sets ``group["lr"] = lr * group["lr_scale"]`` at every step (MAE's
    ``adjust_learning_rate``; :func:`grouping.train.engine.train_steps` does).

    Args:
        model: the module to fine-tune.
        weight_decay: the decay of the decayed groups, ``>= 0``.
        layer_decay: in ``(0, 1]``; layer ``i`` gets ``lr_scale = layer_decay ** (num_layers
            - i)`` (1: no decay, every scale 1).
        no_weight_decay: exact parameter names kept from weight decay (names the model does
            not have are ignored, as MAE does). None: ``model.no_weight_decay()`` where the
            model has it (what MAE's ``main_finetune`` passes), else the family's (Swin:
            ``absolute_pos_embed``; ViT: ``pos_embed``, ``cls_token``, ``dist_token``; Hiera:
            ``pos_embed*``; HiP and Perceiver IO: none, so their learned position tables and
            latents are decayed unless listed).
        no_weight_decay_keywords: substrings that keep a parameter from weight decay
            (SimMIM's). None: the family's (Swin: ``relative_position_bias_table``, as timm
            and SimMIM; others none).
        layer_ids: ``{name: layer id}`` for every trainable parameter, instead of the
            family's order (:func:`layer_ids`).
        num_layers: the top layer id with ``layer_ids`` (default: their largest); without
            ``layer_ids`` the family's (:func:`num_layers`).
        family: the family of ``model`` (None: :func:`model_family`); unused with
            ``layer_ids``.

    Returns:
        A list of dicts with ``params`` (tensors), ``lr_scale``, ``weight_decay`` and
        ``group_name`` (``"layer_{id}_decay"`` / ``"layer_{id}_no_decay"``), ready for
        ``torch.optim.AdamW(groups, lr=...)``.

    Examples:
        >>> from grouping.models import hiera
        >>> model = hiera.hiera_tiny_224(input_size=(64, 64), embed_dim=8, stages=(1, 1, 1, 1))
        >>> groups = param_groups_lrd(model, weight_decay=0.05, layer_decay=0.5)
        >>> [(g["group_name"], g["lr_scale"]) for g in groups[:3]]
        [('layer_0_no_decay', 0.03125), ('layer_0_decay', 0.03125), ('layer_1_no_decay', 0.0625)]
        >>> groups[-1]["group_name"], groups[-1]["lr_scale"]
        ('layer_5_decay', 1.0)
    """
    wd = _check_real("weight_decay", weight_decay, 0.0, math.inf)
    decay = _check_real("layer_decay", layer_decay, 0.0, 1.0, low_open=True)
    if not isinstance(model, nn.Module):
        raise invalid("model", "a torch.nn.Module", type(model).__name__)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if layer_ids is None:
        fam = _family(model, family)
        ids, top = _table(model, fam)
        if num_layers is not None:
            raise invalid("num_layers", "None without layer_ids (the family sets it)", num_layers)
    else:
        fam = None if family is None else _family(model, family)
        if not isinstance(layer_ids, Mapping):
            raise invalid("layer_ids", "a mapping {parameter name: layer id}", layer_ids)
        ids = dict(layer_ids)
        for name, _ in named:
            if name not in ids:
                raise invalid(
                    "layer_ids",
                    "a layer id for every trainable parameter",
                    name,
                    "that parameter has none",
                )
        found = [check_int("layer_ids", ids[n], minimum=0) for n, _ in named]
        top = max(found, default=0) if num_layers is None else num_layers
        top = check_int("num_layers", top, minimum=max(found, default=0))
    default_names, default_keywords = _default_no_weight_decay(model, fam)
    skip = default_names if no_weight_decay is None else set(no_weight_decay)
    keywords = (
        default_keywords if no_weight_decay_keywords is None else set(no_weight_decay_keywords)
    )
    groups: dict[str, dict[str, Any]] = {}
    for name, param in named:
        no_decay = (
            param.ndim <= 1
            or name.endswith(".bias")
            or name in skip
            or any(k in name for k in keywords)
        )
        layer = ids[name]
        key = f"layer_{layer}_{'no_decay' if no_decay else 'decay'}"
        if key not in groups:
            groups[key] = dict(
                params=[],
                lr_scale=decay ** (top - layer),
                weight_decay=0.0 if no_decay else wd,
                group_name=key,
            )
        groups[key]["params"].append(param)
    return list(groups.values())


# -- mixup / cutmix ------------------------------------------------------------------------------


class MixParams(NamedTuple):
    """One batch's mixing: ``lam`` weighs the batch, ``1 - lam`` the batch flipped.

    Attributes:
        lam: the weight of the unflipped images in the targets (for CutMix: one minus the
            box's share of the image, after the correction); 1.0 means nothing mixed.
        box: CutMix's box ``(y0, y1, x0, x1)`` (half-open rows and columns) pasted from the
            flipped batch; None for Mixup (or nothing mixed).
    """

    lam: float
    box: tuple[int, int, int, int] | None = None


class MixedBatch(NamedTuple):
    """What :class:`Mixup` returns: it unpacks like timm's ``(x, target)``.

    Attributes:
        images: float ``[B, C, ..., H, W]``, the mixed images (a new tensor).
        targets: float ``[B, num_classes]``, the mixed, smoothed one-hot targets (rows sum to
            one).
    """

    images: torch.Tensor
    targets: torch.Tensor


def _image_hw(shape: Any) -> tuple[int, int]:
    hw = tuple(shape)[-2:]
    if len(hw) != 2:
        raise invalid("shape", "an image shape (..., H, W)", shape)
    h, w = (check_int("shape", s, minimum=1) for s in hw)
    return h, w


def cutmix_box(shape: Any, lam: float, center: tuple[int, int]) -> tuple[int, int, int, int]:
    """CutMix's box (timm's ``rand_bbox`` with the center given, no margin).

    The box has sides ``int(H * sqrt(1 - lam))`` and ``int(W * sqrt(1 - lam))`` around
    ``center`` (the extra pixel of an odd side below / right of it) and is clipped to the
    image, so it may be smaller than ``1 - lam`` of the image: see :func:`box_lam`.

    Args:
        shape: the image shape; its last two entries are ``(H, W)``.
        lam: in ``[0, 1]``: the share of the image the box would leave.
        center: ``(cy, cx)``, ``0 <= cy < H``, ``0 <= cx < W`` (timm draws them uniformly).

    Returns:
        ``(y0, y1, x0, x1)``: rows ``y0:y1`` and columns ``x0:x1``.

    Examples:
        >>> cutmix_box((8, 10), 0.2, (7, 0))   # 7 x 8 around (7, 0), clipped
        (4, 8, 0, 4)
    """
    h, w = _image_hw(shape)
    lam = _check_real("lam", lam, 0.0, 1.0)
    cy, cx = center
    cy = check_int("center", cy, minimum=0)
    cx = check_int("center", cx, minimum=0)
    if cy >= h or cx >= w:
        raise invalid("center", f"(cy, cx) inside the {h} x {w} image", center)
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + (cut_h + 1) // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + (cut_w + 1) // 2, w)
    return y0, y1, x0, x1


def box_lam(shape: Any, box: tuple[int, int, int, int]) -> float:
    """The corrected lambda of a CutMix box (timm's ``correct_lam``): ``1 - area / (H * W)``,
    the share of every image that stays its own."""
    h, w = _image_hw(shape)
    y0, y1, x0, x1 = box
    return 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)


def _check_images(images: Any) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.ndim < 3:
        shown = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise invalid("images", "a float tensor [B, C, ..., H, W]", shown)
    return images


def mix_images(images: torch.Tensor, params: MixParams) -> torch.Tensor:
    """Mix a batch with itself flipped (``images.flip(0)``): sample ``i`` with ``B - 1 - i``.

    Mixup: ``lam * x + (1 - lam) * x.flip(0)``. CutMix: the box of every image replaced by
    the flipped batch's. Nothing mixed (``lam == 1`` without a box): ``images`` itself.

    Args:
        images: float ``[B, C, ..., H, W]`` (the box is on the last two axes).
        params: the batch's :class:`MixParams`.

    Returns:
        A new tensor of the same shape (``images`` is not changed).
    """
    x = _check_images(images)
    if params.box is not None:
        y0, y1, x0, x1 = params.box
        out = x.clone()
        out[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        return out
    if params.lam == 1.0:
        return x
    return x * params.lam + x.flip(0) * (1.0 - params.lam)


def _check_targets(target: Any, num_classes: int) -> torch.Tensor:
    if (
        not isinstance(target, torch.Tensor)
        or target.ndim != 1
        or target.dtype.is_floating_point
        or target.dtype == torch.bool
    ):
        shown = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise invalid("target", "an int tensor [B] of class indices", shown)
    if target.device.type == "cpu" and target.numel():  # no device sync on accelerators
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= num_classes:
            raise invalid(
                "target", f"class indices in [0, {num_classes})", f"indices in [{lo}, {hi}]"
            )
    return target


def mixup_target(
    target: torch.Tensor, num_classes: int, lam: float = 1.0, smoothing: float = 0.0
) -> torch.Tensor:
    """timm's ``mixup_target``: smoothed one-hot targets mixed with the batch flipped.

    ``y = lam * y1 + (1 - lam) * y1.flip(0)`` where ``y1`` is one-hot with label smoothing:
    ``smoothing / num_classes`` off the class, ``1 - smoothing + smoothing / num_classes`` on
    it (every row sums to one).

    Args:
        target: int ``[B]`` class indices in ``[0, num_classes)`` (checked on the CPU only, so
            that accelerators are not synchronised).
        num_classes: ``K >= 1``.
        lam: in ``[0, 1]``, the weight of the unflipped targets.
        smoothing: in ``[0, 1]``.

    Returns:
        float32 ``[B, K]`` on ``target``'s device.

    Examples:
        >>> mixup_target(torch.tensor([0, 2]), 3, lam=0.75)
        tensor([[0.7500, 0.0000, 0.2500],
                [0.2500, 0.0000, 0.7500]])
    """
    k = check_int("num_classes", num_classes, minimum=1)
    t = _check_targets(target, k)
    lam = _check_real("lam", lam, 0.0, 1.0)
    smoothing = _check_real("smoothing", smoothing, 0.0, 1.0)
    off = smoothing / k
    on = 1.0 - smoothing + off
    y1 = torch.full((t.shape[0], k), off, device=t.device)
    y1.scatter_(1, t.long().reshape(-1, 1), on)
    return y1 * lam + y1.flip(0) * (1.0 - lam)


class Mixup:
    """Mixup / CutMix on whole batches, as timm's ``Mixup(mode="batch")``.

    Per call, in timm's order of draws: with probability ``prob`` the batch is mixed at all;
    when both alphas are positive, CutMix is chosen with probability ``switch_prob`` (else
    Mixup); ``lam ~ Beta(alpha, alpha)`` of the chosen one; for CutMix the box's center is
    uniform over the pixels (:func:`cutmix_box`) and, with ``correct_lam``, ``lam`` becomes
    the exact share left (:func:`box_lam`). Images mix with the batch flipped
    (:func:`mix_images`), targets likewise (:func:`mixup_target`).

    Randomness comes from ``rng`` (a ``numpy.random.Generator``), never the global
    ``numpy.random``: the same seed gives the same draws on every machine. For draws that do
    not depend on where or in which process a batch is mixed (DataLoader workers, a resumed
    run), pass ``rng=numpy.random.default_rng((seed, step))`` to each call.

    Like timm, the batch must be even (timm's ``Mixup.__call__`` asserts it in every mode,
    ``"batch"`` included; in batch mode an odd batch would mix its middle sample with
    itself): use ``drop_last=True`` (MAE's fine-tuning loader does).

    Args:
        mixup_alpha: Mixup's Beta parameter; Mixup is on if ``> 0``.
        cutmix_alpha: CutMix's Beta parameter; CutMix is on if ``> 0``. At least one of the
            two must be positive (timm's default: ``mixup_alpha=1.0``; MAE's fine-tuning
            recipe: ``0.8`` and ``1.0``).
        prob: probability of mixing a batch at all, in ``[0, 1]``.
        switch_prob: probability of CutMix when both are on, in ``[0, 1]``.
        label_smoothing: in ``[0, 1]`` (timm's default 0.1).
        num_classes: ``K``.
        correct_lam: correct CutMix's ``lam`` to the clipped box's area (timm's default).
        rng: a ``numpy.random.Generator``, an int seed or None (fresh entropy).

    Examples:
        >>> mix = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=10, rng=0)
        >>> images, targets = mix(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
        >>> images.shape, targets.shape, bool(torch.allclose(targets.sum(1), torch.ones(4)))
        (torch.Size([4, 3, 32, 32]), torch.Size([4, 10]), True)
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        *,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
        correct_lam: bool = True,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.mixup_alpha = _check_real("mixup_alpha", mixup_alpha, 0.0, math.inf)
        self.cutmix_alpha = _check_real("cutmix_alpha", cutmix_alpha, 0.0, math.inf)
        if self.mixup_alpha == 0.0 and self.cutmix_alpha == 0.0:
            raise invalid(
                "mixup_alpha",
                "mixup_alpha > 0 or cutmix_alpha > 0 (timm's Mixup needs one of them)",
                mixup_alpha,
                "without mixing, use mixup_target(target, num_classes, 1.0, smoothing)",
            )
        self.prob = _check_real("prob", prob, 0.0, 1.0)
        self.switch_prob = _check_real("switch_prob", switch_prob, 0.0, 1.0)
        self.label_smoothing = _check_real("label_smoothing", label_smoothing, 0.0, 1.0)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.correct_lam = bool(correct_lam)
        self.rng = as_rng(rng)

    def draw(self, shape: Any, rng: np.random.Generator | int | None = None) -> MixParams:
        """One batch's :class:`MixParams` for images of ``shape`` (``(..., H, W)``), drawn
        from ``rng`` (default: the mixer's own) in timm's order: apply?, CutMix?, lam, box
        center (row, then column)."""
        h, w = _image_hw(shape)
        gen = self.rng if rng is None else as_rng(rng)
        if not gen.random() < self.prob:
            return MixParams(1.0)
        if self.mixup_alpha > 0.0 and self.cutmix_alpha > 0.0:
            cutmix = bool(gen.random() < self.switch_prob)
        else:
            cutmix = self.cutmix_alpha > 0.0
        alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
        lam = float(gen.beta(alpha, alpha))
        if lam == 1.0:
            return MixParams(1.0)
        if not cutmix:
            return MixParams(lam)
        center = (int(gen.integers(0, h)), int(gen.integers(0, w)))
        box = cutmix_box((h, w), lam, center)
        return MixParams(box_lam((h, w), box) if self.correct_lam else lam, box)

    def __call__(
        self,
        images: torch.Tensor,
        target: torch.Tensor,
        *,
        rng: np.random.Generator | int | None = None,
    ) -> MixedBatch:
        """Mix a batch.

        Args:
            images: float ``[B, C, ..., H, W]``, ``B`` even (not changed in place).
            target: int ``[B]`` class indices.
            rng: the draws of this call (default: the mixer's own generator).

        Returns:
            :class:`MixedBatch` ``(images, targets)``.
        """
        x = _check_images(images)
        b = x.shape[0]
        if b % 2:
            raise invalid(
                "images",
                "an even batch with mixup/cutmix on (timm's Mixup asserts it)",
                f"a batch of {b}",
                "use drop_last=True in the DataLoader",
            )
        if not isinstance(target, torch.Tensor) or target.shape[:1] != (b,):
            shown = tuple(target.shape) if isinstance(target, torch.Tensor) else target
            raise invalid("target", f"an int tensor [{b}] (one class per image)", shown)
        params = self.draw(x.shape, rng)
        targets = mixup_target(target, self.num_classes, params.lam, self.label_smoothing)
        return MixedBatch(mix_images(x, params), targets)

    def __repr__(self) -> str:
        return (
            f"Mixup(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, "
            f"prob={self.prob}, switch_prob={self.switch_prob}, "
            f"label_smoothing={self.label_smoothing}, num_classes={self.num_classes}, "
            f"correct_lam={self.correct_lam})"
        )


# -- losses --------------------------------------------------------------------------------------


def _check_logits(logits: Any) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim != 2:
        shown = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise invalid("logits", "a float tensor [B, K]", shown)
    return logits


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """timm's ``SoftTargetCrossEntropy``: ``mean_b sum_k -target[b, k] * log_softmax(logits)[b,
    k]``, the loss of mixed targets (MAE's fine-tuning with Mixup / CutMix).

    Args:
        logits: float ``[B, K]``.
        target: float ``[B, K]``, each row a distribution (:func:`mixup_target`).

    Returns:
        A scalar tensor.
    """
    x = _check_logits(logits)
    if not isinstance(target, torch.Tensor) or target.shape != x.shape:
        shown = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise invalid("target", f"a float tensor {list(x.shape)} (the logits' shape)", shown)
    return (-target * F.log_softmax(x, dim=-1)).sum(dim=-1).mean()


def label_smoothing_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1
) -> torch.Tensor:
    """timm's ``LabelSmoothingCrossEntropy``: ``(1 - smoothing) * nll + smoothing *
    mean_k(-log_softmax)``, averaged over the batch.

    Args:
        logits: float ``[B, K]``.
        target: int ``[B]`` class indices.
        smoothing: in ``[0, 1)``.

    Returns:
        A scalar tensor.
    """
    x = _check_logits(logits)
    s = _check_real("smoothing", smoothing, 0.0, 1.0)
    if s >= 1.0:
        raise invalid("smoothing", "a float in [0, 1)", smoothing)
    t = _check_targets(target, x.shape[1])
    if t.shape[0] != x.shape[0]:
        raise invalid("target", f"an int tensor [{x.shape[0]}]", tuple(t.shape))
    logp = F.log_softmax(x, dim=-1)
    nll = -logp.gather(1, t.long()[:, None])[:, 0]
    return ((1.0 - s) * nll + s * -logp.mean(dim=-1)).mean()


class SoftTargetCrossEntropy(nn.Module):
    """:func:`soft_target_cross_entropy` as a module (timm's name)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits [B, K]``, ``target [B, K]`` -> scalar."""
        return soft_target_cross_entropy(logits, target)


class LabelSmoothingCrossEntropy(nn.Module):
    """:func:`label_smoothing_cross_entropy` as a module (timm's name).

    Args:
        smoothing: in ``[0, 1)``.
    """

    def __init__(self, smoothing: float = 0.1) -> None:
        super().__init__()
        self.smoothing = _check_real("smoothing", smoothing, 0.0, 1.0)
        if self.smoothing >= 1.0:
            raise invalid("smoothing", "a float in [0, 1)", smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits [B, K]``, ``target [B]`` -> scalar."""
        return label_smoothing_cross_entropy(logits, target, self.smoothing)

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}"


def finetune_loss(*, mixup: bool, smoothing: float = 0.0) -> nn.Module:
    """MAE ``main_finetune``'s criterion: :class:`SoftTargetCrossEntropy` with Mixup / CutMix
    on (targets come mixed and smoothed), else :class:`LabelSmoothingCrossEntropy` if
    ``smoothing > 0``, else ``torch.nn.CrossEntropyLoss()``."""
    s = _check_real("smoothing", smoothing, 0.0, 1.0)
    if mixup:
        return SoftTargetCrossEntropy()
    if s > 0.0:
        return LabelSmoothingCrossEntropy(s)
    return nn.CrossEntropyLoss()


# -- LARS ----------------------------------------------------------------------------------------


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (MAE's linear-probe optimizer).

    For every parameter with more than one dimension the gradient ``g`` gets weight decay,
    ``g + weight_decay * p``, and is scaled by ``trust_coefficient * |p| / |g|`` (by 1 where
    either norm is 0); parameters of at most one dimension (biases, norms) get neither. Then
    ``mu = momentum * mu + g`` and ``p -= lr * mu`` (no dampening, no Nesterov). This is
    MAE's ``util/lars.py`` (from MoCo v3); MAE's linear probe hands it
    ``model.head.parameters()`` in one group.

    Args:
        params: parameters or parameter groups.
        lr: learning rate, ``>= 0`` (MAE sets it every step).
        weight_decay: ``>= 0``.
        momentum: in ``[0, 1]``.
        trust_coefficient: ``> 0``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.0,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
    ) -> None:
        defaults = dict(
            lr=_check_real("lr", lr, 0.0, math.inf),
            weight_decay=_check_real("weight_decay", weight_decay, 0.0, math.inf),
            momentum=_check_real("momentum", momentum, 0.0, 1.0),
            trust_coefficient=_check_real(
                "trust_coefficient", trust_coefficient, 0.0, math.inf, low_open=True
            ),
        )
        super().__init__(params, defaults)

    @staticmethod
    def _direction(p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        """The gradient with weight decay and the trust ratio (matrices and up only)."""
        if p.ndim <= 1:
            return grad
        g = grad + group["weight_decay"] * p
        p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
        ratio = group["trust_coefficient"] * p_norm / g_norm
        ratio = torch.where((p_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
        return g * ratio

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = self._direction(p, p.grad, group)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                state["mu"].mul_(group["momentum"]).add_(d)
                p.add_(state["mu"], alpha=-group["lr"])
        return loss


# -- linear probe and k-NN -----------------------------------------------------------------------


class LinearProbeHead(nn.Sequential):
    """MAE's linear-probe head: ``BatchNorm1d(dim, affine=False, eps=1e-6)`` then
    ``Linear(dim, num_classes)`` with weights from a normal of std 0.01 truncated to
    ``[-2, 2]`` and zero bias (``main_linprobe.py``). Its ``state_dict`` keys are MAE's
    ``head.*`` without the ``head.`` prefix (``0.running_mean``, ``1.weight``, ...).

    Args:
        dim: feature width ``D``.
        num_classes: ``K``.

    Shape:
        ``[B, D]`` -> ``[B, K]``.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        d = check_int("dim", dim, minimum=1)
        k = check_int("num_classes", num_classes, minimum=1)
        super().__init__(nn.BatchNorm1d(d, affine=False, eps=1e-6), nn.Linear(d, k))
        nn.init.trunc_normal_(self[1].weight, std=0.01)
        nn.init.zeros_(self[1].bias)


class KNNResult(NamedTuple):
    """Accuracy of :func:`knn_classify`, as fractions in ``[0, 1]``.

    Attributes:
        top1: share of test samples whose highest-voted class is theirs.
        top5: share whose class is among the ``min(5, k)`` highest-voted (DINO's).
    """

    top1: float
    top5: float


def _check_features(name: str, value: Any, dim: int | None = None) -> torch.Tensor:
    expected = "a float tensor [N, D]" if dim is None else f"a float tensor [M, {dim}]"
    if (
        not isinstance(value, torch.Tensor)
        or not value.is_floating_point()
        or value.ndim != 2
        or value.shape[0] < 1
        or (dim is not None and value.shape[1] != dim)
    ):
        shown = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise invalid(name, expected, shown)
    return value


def _check_labels(name: str, value: Any, n: int) -> torch.Tensor:
    if (
        not isinstance(value, torch.Tensor)
        or value.shape != (n,)
        or value.dtype.is_floating_point
        or value.dtype == torch.bool
    ):
        shown = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise invalid(name, f"an int tensor [{n}] of class indices", shown)
    if int(value.min()) < 0:
        raise invalid(name, "class indices >= 0", int(value.min()))
    return value.long()


@torch.no_grad()
def knn_classify(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 256,
) -> KNNResult:
    """DINO's weighted k-NN classifier on L2-normalised features.

    Features are L2-normalised (as DINO's ``eval_knn`` does before calling its classifier),
    so similarity is the cosine. For each test sample, its ``k`` most similar training
    samples vote for their class with weight ``exp(similarity / temperature)``; the classes
    ranked by summed votes give top-1 and top-5 (among the first ``min(5, k)``, DINO's rule).

    Test features go ``chunk_size`` at a time, so memory is ``chunk_size x N`` similarities
    (plus the features). The result does not depend on ``chunk_size``. Deterministic: the
    neighbours are ``torch.topk``'s, classes with equal votes rank by class index (a stable
    sort; DINO's ``sort`` leaves that order unspecified).

    Args:
        train_features: float ``[N, D]``.
        train_labels: int ``[N]`` class indices.
        test_features: float ``[M, D]``, on the same device.
        test_labels: int ``[M]``.
        k: neighbours, ``1 <= k <= N`` (DINO reports 10, 20, 100, 200).
        temperature: ``T > 0`` (DINO: 0.07).
        num_classes: ``K``, more than every label; None: the largest label + 1.
        chunk_size: test samples per chunk, ``>= 1``.

    Returns:
        :class:`KNNResult` ``(top1, top5)`` as fractions.

    Examples:
        >>> feats = torch.eye(4)
        >>> knn_classify(feats, torch.tensor([0, 1, 2, 3]), feats, torch.tensor([0, 1, 2, 3]),
        ...              k=1)
        KNNResult(top1=1.0, top5=1.0)
    """
    train = _check_features("train_features", train_features)
    n, d = train.shape
    test = _check_features("test_features", test_features, d)
    m = test.shape[0]
    y_train = _check_labels("train_labels", train_labels, n)
    y_test = _check_labels("test_labels", test_labels, m)
    kk = check_int("k", k, minimum=1)
    if kk > n:
        raise invalid("k", f"at most the {n} training samples", k)
    t = _check_real("temperature", temperature, 0.0, math.inf, low_open=True)
    chunk = check_int("chunk_size", chunk_size, minimum=1)
    top_label = max(int(y_train.max()), int(y_test.max())) + 1
    c = top_label if num_classes is None else check_int("num_classes", num_classes, minimum=1)
    if c < top_label:
        raise invalid("num_classes", f"more than every label (>= {top_label})", num_classes)
    train = F.normalize(train, dim=1, p=2)
    test = F.normalize(test, dim=1, p=2)
    ranks = min(5, kk, c)
    hit1 = hit5 = 0
    for start in range(0, m, chunk):
        sim = test[start : start + chunk] @ train.T  # m, N
        top_sim, top_idx = sim.topk(kk, dim=1)  # m, k (most similar first)
        votes = torch.zeros(sim.shape[0], c, dtype=sim.dtype, device=sim.device)
        votes.scatter_add_(1, y_train[top_idx], (top_sim / t).exp())  # m, K
        order = votes.argsort(dim=1, descending=True, stable=True)[:, :ranks]
        hits = order == y_test[start : start + chunk, None]
        hit1 += int(hits[:, 0].sum())
        hit5 += int(hits.any(dim=1).sum())
    return KNNResult(hit1 / m, hit5 / m)
