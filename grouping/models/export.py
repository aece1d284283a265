"""Export weights: a model's encoder in timm's, the official or this library's names, and
safetensors files.

Pretraining checkpoints (``ckpt_XXXXXXXX.pt``, :mod:`grouping.train.checkpoint`) hold the
whole pretraining model in this library's names. Outside tools want the encoder in the names
of the class they load it into, with nothing missing but the classifier head and nothing
unexpected. The functions here are plain ``state_dict -> state_dict`` maps (in the manner of
timm's ``checkpoint_filter_fn``): they rename and drop keys, and never change a value (only
SimMIM's mask token is reshaped to SimMIM's shape and GreenMIM's fixed decoder table computed).
What each target loads is measured, not assumed: ``tests/test_export.py`` checks the exports
against the ``state_dict`` key lists recorded from timm 1.0.31 and hiera-transformer 0.1.4
(``tests/fixtures/record_export.py``) and, where those packages are installed, loads them into
the real classes and compares the outputs.

Naming maps (``to=``), per family:

* Swin (GreenMIM, SimMIM), ``"timm"``: timm's ``SwinTransformer``. The library's encoder names
  are timm's already (``patch_embed``, ``layers.{i}.blocks.{j}``, the downsample at the start
  of stage ``i``, ``norm``); timm's ``relative_position_index`` and ``attn_mask`` are
  non-persistent buffers (timm 1.0), so the export has none. Missing on load:
  ``head.fc.weight``, ``head.fc.bias``. ``"official"`` is refused: the reference Swin here is
  timm's (whose ``checkpoint_filter_fn`` also reads microsoft/Swin-Transformer's layout).
* Hiera (MAE-Hiera, a Hiera classifier), ``"official"``: facebookresearch/hiera's ``Hiera``
  (PyPI ``hiera-transformer``), whose names the library uses; MAE's final ``encoder_norm``
  becomes ``norm`` and the multi-scale fusion heads (MAE only) are dropped. Missing on load:
  ``head.projection.*``. ``"timm"``: timm's ``Hiera``, the same with the final norm as
  ``head.norm`` and the classifier as ``head.fc`` (missing on load: ``head.fc.*``).
* HiP, Perceiver IO: ``"timm"`` is refused (timm has no such model), and so is ``"official"``
  (the official models are JAX (Haiku) modules, not torch state dicts).

``"grouping"`` is this library's own names, for every model: the encoder as
``encoder_state_dict()`` returns it (what ``grouping pretrain --save`` writes), or, with the
decoder, the model's whole ``state_dict`` (what ``create_model(name, **overrides)`` loads with
``strict=True``). Models without a separate encoder (HiP, Perceiver IO, a Hiera classifier)
export their whole ``state_dict``. ``"auto"`` is each family's standard: timm for Swin, the
official names for Hiera, this library's for the others.

A model that has a classifier (a fine-tuned Hiera) keeps it, renamed (``head.projection`` in
the official names, ``head.fc`` in timm's); a pretraining model has none, so exactly the head's
keys are missing when the export is loaded into the classifier.

``with_decoder=True`` adds the MAE decoder under MAE's names (facebookresearch/mae, which
GreenMIM and the official MAE-Hiera use too): ``decoder_embed.*``, ``mask_token``,
``decoder_pos_embed`` (GreenMIM's fixed sin-cos table ``[1, L, D]`` is a non-persistent buffer
of the model, so it is computed into the export, as MAE's checkpoints carry it),
``decoder_blocks.{i}.*`` (timm's ViT ``Block`` names), ``decoder_norm.*``, ``decoder_pred.*``.
The encoder keeps its flat names beside them, as in MAE's checkpoints. For Hiera the decoder
belongs to the official ``MaskedAutoencoderHiera``, so ``to="official"`` with the decoder is
exactly that class's ``state_dict`` (``encoder_norm`` and the fusion heads kept, nothing
missing); timm has no MAE-Hiera, so ``to="timm"`` refuses the decoder. SimMIM adds its encoder's
mask token under SimMIM's name, ``encoder.mask_token`` ``[1, 1, E]``.

Files: :func:`save_safetensors` and :func:`load_safetensors` write and read the safetensors
format (the field's standard: no pickle, so loading runs no code), with string metadata.

Examples:
    >>> from grouping.models import create_model
    >>> model = create_model("greenmim_swin_tiny", img_size=64, window_size=4, embed_dim=16,
    ...                      depths=(1, 1, 1), num_heads=(1, 2, 2), mask_unit=16)
    >>> state = export_state_dict(model, to="timm")
    >>> list(state)[:2], "head.fc.weight" in state
    (['patch_embed.proj.weight', 'patch_embed.proj.bias'], False)
    >>> full = export_state_dict(model, to="timm", with_decoder=True)
    >>> sorted({k.split(".")[0] for k in set(full) - set(state)})
    ['decoder_blocks', 'decoder_embed', 'decoder_norm', 'decoder_pos_embed', 'decoder_pred',
     'mask_token']
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from ..core.errors import invalid
from .hiera import Hiera, MaskedAutoencoderHiera
from .registry import create_model, list_models
from .simmim import SimMIMSwin
from .swin import GreenMIMSwin, SwinClassifier

__all__ = [
    "DECODER_KEYS",
    "NAMINGS",
    "Export",
    "LoadedModel",
    "SafetensorsFile",
    "export_checkpoint",
    "export_state_dict",
    "hiera_to_official",
    "hiera_to_timm",
    "load_safetensors",
    "model_from_checkpoint",
    "save_safetensors",
]

Naming = Literal["timm", "official", "grouping", "auto"]

#: The names ``to`` accepts.
NAMINGS: tuple[str, ...] = ("timm", "official", "grouping", "auto")

#: MAE's decoder: the top-level names (a key is the name or starts with ``name + "."``).
DECODER_KEYS: tuple[str, ...] = (
    "decoder_embed",
    "mask_token",
    "decoder_pos_embed",
    "decoder_blocks",
    "decoder_norm",
    "decoder_pred",
)

# families: what each naming means, None where it is refused (with why)
_SWIN, _HIERA, _OTHER = "Swin", "Hiera", "other"
_REFUSED = {
    (_SWIN, "official"): (
        "The Swin models' reference here is timm's SwinTransformer, whose checkpoint_filter_fn "
        "also reads microsoft/Swin-Transformer's layout: use to='timm'"
    ),
    (_OTHER, "timm"): "There is no {model} model in timm: use to='grouping' (this library's names)",
    (_OTHER, "official"): (
        "The official {model} is a JAX (Haiku) module, not a torch state_dict: use "
        "to='grouping' (this library's names)"
    ),
}
_AUTO = {_SWIN: "timm", _HIERA: "official", _OTHER: "grouping"}
# the family of a model defined elsewhere, by its module, for messages
_OTHER_NAMES = {"hip": "HiP", "perceiver": "Perceiver IO", "multimodal": "Perceiver IO"}


class LoadedModel(NamedTuple):
    """A model rebuilt from a checkpoint.

    Attributes:
        name: its registry name (``checkpoint["run"]["model"]``).
        overrides: the architecture arguments it was built with.
        model: the ``nn.Module``, weights loaded (``strict=True``), in eval mode, on the CPU.
    """

    name: str
    overrides: dict[str, Any]
    model: nn.Module


class Export(NamedTuple):
    """An exported state and the metadata that describes it (see :func:`export_checkpoint`).

    Attributes:
        state: the tensors, by name.
        metadata: strings for a safetensors header: ``format`` (``"pt"``), ``grouping_model``,
            ``grouping_overrides`` (JSON), ``names`` (the naming, ``"auto"`` resolved),
            ``contents`` (``"encoder"``, ``"encoder+decoder"`` or ``"model"``) and
            ``grouping_version``.
    """

    state: dict[str, torch.Tensor]
    metadata: dict[str, str]


class SafetensorsFile(NamedTuple):
    """What :func:`load_safetensors` read.

    Attributes:
        state: the tensors, by name (on the CPU).
        metadata: the header's string metadata (empty if none).
    """

    state: dict[str, torch.Tensor]
    metadata: dict[str, str]


# -- checkpoints -> models -----------------------------------------------------------------------


def model_from_checkpoint(checkpoint: Mapping[str, Any]) -> LoadedModel:
    """Rebuild the model of a loaded training checkpoint.

    Args:
        checkpoint: the dict :func:`grouping.train.checkpoint.load_checkpoint` returns: its
            ``"run"`` entry names the model (``"model"``) and its architecture
            (``"overrides"``), its ``"model"`` entry holds the weights (this library's names).

    Returns:
        :class:`LoadedModel` ``(name, overrides, model)``:
        ``create_model(name, **overrides)`` with the weights loaded ``strict=True``, in eval
        mode.

    Raises:
        GroupingValueError: naming ``checkpoint``, for a dict without those entries, a model
            that is not registered, or weights that do not fit the model.
    """
    expected = (
        "a grouping training checkpoint: a dict with 'run' ({'model': NAME, 'overrides': {...}}) "
        "and 'model' (a state_dict), as grouping.train.checkpoint.load_checkpoint returns"
    )
    if not isinstance(checkpoint, Mapping):
        raise invalid("checkpoint", expected, type(checkpoint).__name__)
    run, weights = checkpoint.get("run"), checkpoint.get("model")
    if not isinstance(run, Mapping) or not isinstance(weights, Mapping):
        raise invalid("checkpoint", expected, f"a dict with keys {sorted(map(str, checkpoint))}")
    name, overrides = run.get("model"), run.get("overrides") or {}
    if not isinstance(name, str) or name not in list_models():
        raise invalid(
            "checkpoint",
            "a checkpoint of a registered model (grouping.models.list_models())",
            name,
            "Its run entry names that model; it was written by another program or another "
            "version of grouping",
        )
    if not isinstance(overrides, Mapping):
        raise invalid("checkpoint", "run['overrides'] as a dict", type(overrides).__name__)
    model = create_model(name, **overrides)
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [
            f"{len(keys)} {what} (first {keys[0]!r})"
            for what, keys in (
                ("keys missing", missing),
                ("unexpected keys", unexpected),
                ("keys of another shape", wrong),
            )
            if keys
        ]
        raise invalid(
            "checkpoint",
            f"the weights of {name} with overrides {dict(overrides)}",
            f"{len(missing) + len(unexpected) + len(wrong)} keys that do not fit",
            "Its 'model' entry has " + "; ".join(parts),
        )
    model.load_state_dict(dict(weights), strict=True)
    return LoadedModel(name, dict(overrides), model.eval())


# -- pure maps -----------------------------------------------------------------------------------


def _is_decoder(key: str) -> bool:
    return any(key == n or key.startswith(n + ".") for n in DECODER_KEYS)


def _renamed(state: Mapping[str, torch.Tensor], old: str, new: str) -> dict[str, torch.Tensor]:
    return {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in state.items()}


def hiera_to_official(
    state: Mapping[str, torch.Tensor], *, with_decoder: bool = False
) -> dict[str, torch.Tensor]:
    """A Hiera ``state_dict`` (the library's names: the official ones) -> what the official
    ``Hiera`` loads.

    Args:
        state: a ``MaskedAutoencoderHiera`` or ``Hiera`` state (``encoder_norm``, the fusion
            heads and the decoder for MAE; ``norm`` and ``head.projection`` for a classifier).
        with_decoder: keep everything of an MAE state (the official ``MaskedAutoencoderHiera``
            loads it as it is).

    Returns:
        Without the decoder: ``encoder_norm.*`` renamed ``norm.*``, ``multi_scale_fusion_heads.*``
        and MAE's decoder dropped, every other key as it was (``head.projection.*`` kept if
        there). With it: ``state`` unchanged.
    """
    if with_decoder:
        return dict(state)
    kept = {
        k: v
        for k, v in state.items()
        if not _is_decoder(k) and not k.startswith("multi_scale_fusion_heads.")
    }
    return _renamed(kept, "encoder_norm.", "norm.")


def hiera_to_timm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hiera ``state_dict`` (official names) -> what timm's ``Hiera`` loads: the final norm
    (``norm`` or MAE's ``encoder_norm``) becomes ``head.norm``, ``head.projection`` becomes
    ``head.fc``, the fusion heads and MAE's decoder are dropped (the inverse of
    :func:`grouping.models.hiera.convert_timm_state_dict`)."""
    out = hiera_to_official(state)
    out = _renamed(out, "norm.", "head.norm.")
    return _renamed(out, "head.projection.", "head.fc.")


def _mae_decoder(model: nn.Module) -> dict[str, torch.Tensor]:
    """MAE's decoder keys of ``model``, in MAE's order, ``decoder_pos_embed`` included even
    where it is a non-persistent buffer."""
    state = model.state_dict()
    state.setdefault("decoder_pos_embed", model.decoder_pos_embed.detach())
    return {
        k: state[k] for name in DECODER_KEYS for k in state if k == name or k.startswith(name + ".")
    }


# -- models -> exports ---------------------------------------------------------------------------


def _family(model: nn.Module) -> tuple[str, str]:
    """``(family, a name for messages)``."""
    if isinstance(model, (GreenMIMSwin, SimMIMSwin, SwinClassifier)):
        return _SWIN, type(model).__name__
    if isinstance(model, Hiera):
        return _HIERA, type(model).__name__
    module = type(model).__module__.rsplit(".", 1)[-1]
    return _OTHER, _OTHER_NAMES.get(module, type(model).__name__)


def _resolve(model: nn.Module, to: Any, with_decoder: Any) -> tuple[str, str]:
    """Validate ``to`` and ``with_decoder`` for ``model``; ``(family, naming)``."""
    if not isinstance(to, str) or to not in NAMINGS:
        raise invalid("to", "one of " + ", ".join(map(repr, NAMINGS)), to)
    if not isinstance(with_decoder, bool):
        raise invalid("with_decoder", "True or False", with_decoder)
    family, label = _family(model)
    naming = _AUTO[family] if to == "auto" else to
    reason = _REFUSED.get((family, naming))
    if reason is not None:
        allowed = [n for n in NAMINGS if n == "auto" or (family, n) not in _REFUSED]
        raise invalid(
            "to",
            f"one of {', '.join(map(repr, allowed))} for {label}",
            to,
            reason.format(model=label),
        )
    if with_decoder and family == _HIERA and not isinstance(model, MaskedAutoencoderHiera):
        raise invalid("with_decoder", f"False for {label} (a classifier has no decoder)", True)
    if family == _HIERA and naming == "timm" and with_decoder:
        raise invalid(
            "with_decoder",
            "False with to='timm' for Hiera (timm has no MAE-Hiera)",
            True,
            "The official MaskedAutoencoderHiera holds the decoder: use to='official'",
        )
    return family, naming


def _contents(model: nn.Module, with_decoder: bool) -> str:
    if not hasattr(model, "encoder_state_dict"):
        return "model"
    return "encoder+decoder" if with_decoder else "encoder"


def export_state_dict(
    model: nn.Module | Mapping[str, Any],
    *,
    to: Naming = "auto",
    with_decoder: bool = False,
) -> dict[str, torch.Tensor]:
    """The weights of ``model`` in the names of ``to`` (see the module docstring's table).

    Args:
        model: a model of this library (a pretraining model such as ``GreenMIMSwin``,
            ``SimMIMSwin``, ``MaskedAutoencoderHiera``, HiP's; or a classifier such as
            ``Hiera``), or a loaded training checkpoint (rebuilt with
            :func:`model_from_checkpoint`).
        to: ``"timm"``, ``"official"``, ``"grouping"`` or ``"auto"`` (the family's standard).
        with_decoder: add MAE's decoder in MAE's names (see the module docstring).

    Returns:
        ``{name: tensor}``, the encoder's parameters (and persistent buffers, where the
        target has any: timm's Swin and the official Hiera have none), detached, sharing memory
        with the model as ``state_dict`` does (only a computed ``decoder_pos_embed`` is new).
        For timm's Swin or Hiera and the official Hiera it loads with ``strict=False`` with
        exactly the classifier head missing (nothing missing with the official Hiera's MAE
        decoder) and nothing unexpected.

    Raises:
        GroupingValueError: naming ``to`` for a naming the family does not have (``"timm"`` for
            HiP, ``"official"`` for Swin), ``with_decoder`` for a decoder the target has no
            place for, or ``checkpoint`` for a checkpoint that cannot be rebuilt.
    """
    if not isinstance(model, nn.Module):
        model = model_from_checkpoint(model).model
    family, naming = _resolve(model, to, with_decoder)
    if not hasattr(model, "encoder_state_dict"):  # no separate encoder
        state = model.state_dict()
        return hiera_to_timm(state) if family == _HIERA and naming == "timm" else state
    if naming == "grouping":
        return model.state_dict() if with_decoder else model.encoder_state_dict()
    if family == _HIERA:
        full = model.state_dict() if with_decoder else model.encoder_state_dict()
        if naming == "timm":
            return hiera_to_timm(full)
        return hiera_to_official(full, with_decoder=with_decoder)
    state = model.encoder_state_dict()  # Swin: timm's names already
    if with_decoder:
        mae = model.mae if isinstance(model, SimMIMSwin) else model
        state.update(_mae_decoder(mae))
        if isinstance(model, SimMIMSwin):
            state["encoder.mask_token"] = model.mask_token.detach().reshape(1, 1, -1)
    return state


def export_checkpoint(
    checkpoint: Mapping[str, Any], *, to: Naming = "auto", with_decoder: bool = False
) -> Export:
    """:func:`export_state_dict` of a loaded training checkpoint, with the metadata that says
    what the export is (for a safetensors header, :func:`save_safetensors`).

    Args:
        checkpoint: see :func:`model_from_checkpoint`.
        to: see :func:`export_state_dict`.
        with_decoder: see :func:`export_state_dict`.

    Returns:
        :class:`Export` ``(state, metadata)``.
    """
    from .. import __version__

    loaded = model_from_checkpoint(checkpoint)
    state = export_state_dict(loaded.model, to=to, with_decoder=with_decoder)
    _, naming = _resolve(loaded.model, to, with_decoder)
    metadata = {
        "format": "pt",
        "grouping_model": loaded.name,
        "grouping_overrides": json.dumps(loaded.overrides, sort_keys=True),
        "names": naming,
        "contents": _contents(loaded.model, with_decoder),
        "grouping_version": __version__,
    }
    return Export(state, metadata)


# -- safetensors ---------------------------------------------------------------------------------


def _check_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise invalid(
            "metadata", "a dict of str to str (safetensors stores strings only)", metadata
        )
    return dict(metadata)


def _own_storage(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, each with a storage of its own: safetensors refuses tensors that
    share memory (tied weights, views), so the second and later users of a storage, and views
    into a larger one, are copied."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise invalid(
                "state",
                "a dict of str to torch.Tensor",
                f"{key!r}: {type(value).__name__}",
            )
        t = value.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        whole = storage.nbytes() == t.numel() * t.element_size() and t.storage_offset() == 0
        if storage.data_ptr() in seen or not whole:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def save_safetensors(
    state: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``state`` to a safetensors file.

    Args:
        state: ``{name: tensor}`` (any device; tensors sharing memory and non-contiguous ones
            are copied, since the format stores each tensor once and contiguously).
        path: the file to write.
        metadata: strings stored in the header (e.g. :class:`Export`'s ``metadata``).
    """
    from safetensors.torch import save_file

    header = _check_metadata(metadata)
    if not isinstance(state, Mapping):
        raise invalid("state", "a dict of str to torch.Tensor", type(state).__name__)
    save_file(_own_storage(state), os.fspath(path), metadata=header or None)


def load_safetensors(path: str | os.PathLike[str]) -> SafetensorsFile:
    """Read a safetensors file (no pickle: nothing in the file runs).

    Args:
        path: the file.

    Returns:
        :class:`SafetensorsFile` ``(state, metadata)``: CPU tensors in the file's order, and
        the header's metadata.

    Raises:
        GroupingValueError: naming ``path`` for a missing or unreadable file.
    """
    from safetensors import SafetensorError, safe_open

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise invalid("path", "an existing safetensors file", name)
    try:
        with safe_open(name, framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise invalid("path", "a readable safetensors file", name, first) from None
    return SafetensorsFile(state, metadata)
