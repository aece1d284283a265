"""The classifier a fine-tuning or probing run starts from: ``--init`` and ``--model``.

``--init`` names where the weights come from:

* ``random``: the classifier ``--model`` as the registry builds it (the baseline every
  pretrained encoder is compared with);
* a ``grouping pretrain`` checkpoint (``ckpt_*.pt``): the pretraining model is rebuilt from the
  checkpoint's run (its name and architecture), its encoder exported in the classifier's names
  (:func:`grouping.models.export.export_state_dict`) and loaded into the classifier of the same
  family and architecture (``ModelInfo.classifier``, or ``--model``); only the head is new;
* a ``grouping finetune`` checkpoint, or the ``last.pt`` / ``best.pt`` weights it keeps: the
  classifier itself, head included (the class count must be the folder's);
* a plain ``state_dict`` (a ``grouping pretrain --save`` encoder, an official Hiera checkpoint
  ``{"model_state": ...}``, a timm Swin ``state_dict``): loaded into ``--model``; MAE's decoder
  and fusion heads are left out, a head of another class count is re-initialised.

What is not loaded is listed (:attr:`Initial.notes`); weights of another architecture (a
missing encoder key, an unexpected key, a shape that differs outside the head) are a one-line
error naming ``--init``, as is a checkpoint of another family than ``--model``'s.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from ..core.errors import GroupingValueError, invalid
from ..models.export import export_state_dict, hiera_to_official, model_from_checkpoint
from ..models.registry import create_model, list_models, model_info

__all__ = ["HEADS", "Initial", "build_classifier", "classifier_family", "read_weights"]

#: The head of every classifier family: the keys fine-tuning initialises anew.
HEADS = {"swin": "head.", "hiera": "head.", "hip": "label_", "perceiver": "decoder."}

# what a pretraining model has beside its encoder (never loaded into a classifier)
_PRETRAIN_ONLY = ("decoder_", "mask_token", "encoder.mask_token", "multi_scale_fusion_heads.")
# pretraining-only architecture arguments (Hiera's MAE pools one stage less: q_pool=2)
_PRETRAIN_ARGS = {
    "hiera": ("q_pool", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "norm_pix_loss"),
    "swin": (  # SwinConfig's masking and decoder fields (a classifier leaves them unused)
        "mask_unit",
        "decoder_dim",
        "decoder_depth",
        "decoder_heads",
        "decoder_norm_eps",
        "norm_pix_loss",
    ),
}
_DROP_PATH_ARG = {"swin": "drop_path_rate", "hiera": "drop_path_rate", "hip": "drop_path_rate"}


class Initial(NamedTuple):
    """The classifier a run starts from.

    Attributes:
        model: the classifier, on the CPU, with the ``--init`` weights loaded.
        name: its registry name.
        overrides: the arguments it was built with, beyond the registry's
            (``create_model(name, **overrides)`` rebuilds it).
        source: what ``--init`` was, in words.
        notes: what was not loaded from ``--init`` (one line each; empty for ``random``).
    """

    model: nn.Module
    name: str
    overrides: dict[str, Any]
    source: str
    notes: list[str]


def classifier_family(name: str) -> str:
    """The family of a classifier ``grouping finetune`` and ``grouping probe`` build.

    Raises:
        GroupingValueError: naming ``--model`` for an unknown name, a pretraining model or a
            family without a classification head here.
    """
    if name not in list_models():
        raise invalid("--model", "one of " + ", ".join(list_models(pretrain=False)), name)
    info = model_info(name)
    if info.pretrain:
        raise invalid(
            "--model",
            "a classifier (pretraining models are fine-tuned through their classifier)",
            name,
            f"try --model {info.classifier}" if info.classifier else "",
        )
    if info.family not in HEADS or info.data != "images":
        raise invalid(
            "--model",
            f"an image classifier of the families {', '.join(HEADS)}",
            f"{name} ({info.family}, {info.data})",
            "the HiP image classifiers are hip_*_classifier" if info.family == "hip" else "",
        )
    return info.family


def read_weights(path: str) -> Any:
    """``torch.load`` of an ``--init`` file, ``weights_only`` (a pickled object is refused
    without running it)."""
    if not os.path.isfile(path):
        raise invalid("--init", "a weights file or 'random'", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise invalid(
            "--init", "tensors and plain values only", path, "it carries pickled objects"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise invalid("--init", "a readable torch weights file", f"{path} ({exc})") from None


def _family_of(pretrain_name: str) -> str:
    family = model_info(pretrain_name).family
    return "swin" if family == "simmim" else family


def _build(
    name: str,
    overrides: dict[str, Any],
    num_classes: int,
    drop_path: float,
    img_size: int | None = None,
) -> Any:
    family = classifier_family(name)
    kwargs = {**overrides, "num_classes": int(num_classes)}
    if img_size is not None:  # square; Hiera takes (H, W)
        size_arg = model_info(name).size_arg
        kwargs[size_arg] = (img_size, img_size) if family == "hiera" else img_size
    if family in _DROP_PATH_ARG:
        kwargs[_DROP_PATH_ARG[family]] = float(drop_path)
    return create_model(name, **kwargs), kwargs


def _unwrap(state: Any, path: str) -> dict[str, torch.Tensor]:
    for key in ("model_state", "model", "state_dict"):  # official Hiera, MAE/timm, Lightning
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise invalid("--init", "a state_dict (parameter names to tensors)", path)
    state = dict(state)
    if any(k.startswith("encoder_norm.") for k in state):  # an MAE-Hiera: the official names
        state = hiera_to_official(state)
    return state


def _load(model: nn.Module, state: Mapping[str, torch.Tensor], head: str, path: str) -> list[str]:
    """Load ``state`` into ``model`` with only the head allowed to be new; return notes."""
    target = model.state_dict()
    notes = []
    convert = getattr(model, "pretrained_state", None)  # HiP: its decoder half set apart
    if callable(convert):
        state, half = convert(state)
        if half:
            notes.append(f"not used from --init (the decoder half): {len(half)} keys, {half[0]}...")
    unused = sorted(k for k in state if k not in target and k.startswith(_PRETRAIN_ONLY))
    if unused:
        notes.append(f"not used from --init (pretraining only): {len(unused)} keys, {unused[0]}...")
    state = {k: v for k, v in state.items() if k not in unused}
    other_head = [
        k for k in state if k.startswith(head) and k in target and state[k].shape != target[k].shape
    ]
    if other_head:
        notes.append(f"head of another class count re-initialised: {', '.join(other_head)}")
        state = {k: v for k, v in state.items() if k not in other_head}
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in state if k in target and state[k].shape != target[k].shape]
    wrong = [k for k in missing if not k.startswith(head)]
    if wrong or unexpected or shapes or len(missing) == len(target):
        parts = []
        for what, keys in (
            ("missing", wrong),
            ("unexpected", unexpected),
            ("of another shape", shapes),
        ):
            if keys:
                more = "..." if keys[3:] else ""
                parts.append(f"{len(keys)} keys {what} ({', '.join(keys[:3])}{more})")
        raise invalid(
            "--init",
            f"weights of the architecture of --model ({type(model).__name__}: every key but "
            f"the head {head}*)",
            path,
            ("; ".join(parts) or "no key in common")
            + ". Pass the --model and --set of the run that wrote them",
        )
    model.load_state_dict(state, strict=False)
    head_missing = [k for k in missing if k.startswith(head) and k not in other_head]
    if head_missing:
        notes.append(f"new head: {', '.join(head_missing)}")
    return notes


def build_classifier(
    init: str,
    *,
    model: str | None,
    overrides: Mapping[str, Any],
    num_classes: int,
    drop_path: float = 0.0,
    img_size: int | None = None,
) -> Initial:
    """The classifier of a run, with its ``--init`` weights (see the module docstring).

    Args:
        init: ``"random"`` or the path of a weights file.
        model: the classifier's registry name (None: the checkpoint's; required for
            ``random`` and plain state dicts).
        overrides: architecture arguments changed by the command line (``--set``).
        num_classes: classes of the head (the data folder's).
        drop_path: stochastic depth of the last block (Swin and Hiera).
        img_size: the input size (square), when not the model's or the checkpoint's.

    Returns:
        An :class:`Initial`.

    Raises:
        GroupingValueError: naming ``--init`` or ``--model`` (see the module docstring).
    """
    if init == "random":
        if model is None:
            raise invalid("--model", "a classifier to build with --init random", None)
        net, kwargs = _build(model, dict(overrides), num_classes, drop_path, img_size)
        return Initial(net, model, kwargs, "random initialisation", [])
    raw = read_weights(init)
    run = raw.get("run") if isinstance(raw, Mapping) else None
    if not (isinstance(run, Mapping) and isinstance(run.get("model"), str)):
        if model is None:
            raise invalid(
                "--model", "the classifier these weights are for (a plain state_dict)", None, init
            )
        net, kwargs = _build(model, dict(overrides), num_classes, drop_path, img_size)
        notes = _load(net, _unwrap(raw, init), HEADS[classifier_family(model)], init)
        return Initial(net, model, kwargs, f"weights {init}", notes)
    source = run["model"]
    if source not in list_models():
        raise invalid("--init", "a checkpoint of a registered model", f"{init} ({source!r})")
    info = model_info(source)
    if not info.pretrain:  # a fine-tuning checkpoint: the classifier itself
        name = model or source
        if classifier_family(name) != classifier_family(source):
            raise invalid(
                "--init", f"a checkpoint of the {classifier_family(name)} family", init, source
            )
        kwargs = {**dict(run.get("overrides") or {}), **dict(overrides)}
        saved = kwargs.get("num_classes")
        if saved is not None and int(saved) != int(num_classes):
            raise invalid(
                "--data",
                f"{saved} classes, as the head of --init {init}",
                f"a folder of {num_classes} classes",
                "fine-tune its encoder instead: export it, then --init the export with --model",
            )
        kwargs.pop("num_classes", None)
        kwargs.pop(_DROP_PATH_ARG.get(classifier_family(name), ""), None)  # this run's rate
        net, kwargs = _build(name, kwargs, num_classes, drop_path, img_size)
        weights = raw["model"] if isinstance(raw.get("model"), Mapping) else raw
        notes = _load(net, _unwrap(weights, init), "\0", init)  # the head must be there too
        return Initial(net, name, kwargs, f"fine-tuned {source} ({init})", notes)
    family = _family_of(source)
    name = model or info.classifier
    if name is None:
        raise invalid(
            "--init", "a checkpoint of a model with a registered classifier", f"{init} ({source})"
        )
    if classifier_family(name) != family:
        raise invalid(
            "--init",
            f"a checkpoint of the {classifier_family(name)} family (--model {name})",
            f"{init}, a checkpoint of {source} ({family})",
        )
    try:
        pretrained = model_from_checkpoint(raw).model
    except GroupingValueError as exc:
        raise invalid(
            "--init", "a checkpoint whose run rebuilds its model", f"{init} ({exc})"
        ) from None
    arch = {**dict(info.kwargs), **dict(run.get("overrides") or {})}
    for key in _PRETRAIN_ARGS.get(family, ()):
        arch.pop(key, None)
    net, kwargs = _build(name, {**arch, **dict(overrides)}, num_classes, drop_path, img_size)
    encoder = export_state_dict(pretrained, to="auto")
    notes = _load(net, encoder, HEADS[family], init)
    return Initial(net, name, kwargs, f"the encoder of {source} ({init})", notes)
