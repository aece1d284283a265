"""``grouping export``: a checkpoint's encoder in timm's or the official names, or as safetensors.

Reads a ``grouping pretrain`` checkpoint (``ckpt_*.pt``, or the folder that holds them: its
latest), a fine-tuning checkpoint or the ``last.pt`` / ``best.pt`` weights fine-tuning keeps
beside them (the same layout without the optimizer), rebuilds the model and writes its weights
with :func:`grouping.models.export.export_checkpoint`::

    grouping export --checkpoint ckpt/ckpt_00000100.pt --to timm --out swin.pth
    grouping export --checkpoint ckpt --to safetensors --out encoder.safetensors --with-decoder

``--to`` picks the file:

* ``timm``: a ``torch.save`` state_dict that timm's ``SwinTransformer`` (Swin) or ``Hiera``
  loads with nothing missing but the classifier head and nothing unexpected;
* ``official``: the same for the official Hiera (facebookresearch/hiera), Hiera only;
* ``safetensors``: the family's standard names (timm's for Swin, the official ones for Hiera,
  this library's for HiP and Perceiver IO) in a safetensors file whose header holds
  :class:`~grouping.models.export.Export`'s metadata (model, architecture, names, contents).

``--with-decoder`` keeps MAE's decoder under MAE's names (with ``official`` that is exactly the
official ``MaskedAutoencoderHiera``'s ``state_dict``). A classifier checkpoint keeps its head.

The file is written atomically (a temporary file in the same folder, then a rename), so a
failed export never leaves half a file over an earlier one. One line says what was written:
the keys, the model and its family, the names, and the head keys the target class will miss
on load. Bad arguments (a target the family does not have, a file that is not a checkpoint,
an ``--out`` in a missing folder) give one line on stderr naming the option, exit status 2,
and write nothing.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._files import check_out, write_atomic
from ..core.errors import GroupingValueError, invalid

__all__ = ["Exported", "TARGETS", "add_parser", "run", "text"]

#: ``--to`` -> the ``to=`` naming of :func:`grouping.models.export.export_checkpoint`.
TARGETS: dict[str, str] = {"timm": "timm", "official": "official", "safetensors": "auto"}

_TORCH_SAVE = (".pt", ".pth", ".bin")
_SUFFIXES = {"timm": _TORCH_SAVE, "official": _TORCH_SAVE, "safetensors": (".safetensors",)}

# the class an export loads into, by (family, names), and the prefix of that class's head
_LOADS_INTO = {
    ("Swin", "timm"): ("timm's SwinTransformer", "head.fc"),
    ("Hiera", "timm"): ("timm's Hiera", "head.fc"),
    ("Hiera", "official"): ("the official Hiera", "head.projection"),
}
# registry family -> the family's name in messages
_FAMILIES = {
    "swin": "Swin",
    "simmim": "Swin",
    "hiera": "Hiera",
    "hip": "HiP",
    "perceiver": "Perceiver IO",
}
# library argument -> option, for the messages of the library's errors
_OPTIONS = {"checkpoint": "--checkpoint", "to": "--to", "with_decoder": "--with-decoder"}


@dataclass(frozen=True)
class Exported:
    """What ``grouping export`` wrote (what :func:`text` prints).

    Attributes:
        path: the file written.
        file: ``"torch.save"`` or ``"safetensors"``.
        keys: how many tensors it holds.
        model: the checkpoint's registry name.
        family: ``"Swin"``, ``"Hiera"``, ``"HiP"``, ``"Perceiver IO"``.
        names: the naming (``"timm"``, ``"official"``, ``"grouping"``).
        contents: ``"encoder"``, ``"encoder+decoder"`` or ``"model"`` (a whole model: a
            classifier, HiP, Perceiver IO).
        decoder_keys: how many of the keys are MAE's decoder.
        target: the class the file loads into, in words.
        missing: the keys that class has and the file lacks (its classifier head).
    """

    path: str
    file: str
    keys: int
    model: str
    family: str
    names: str
    contents: str
    decoder_keys: int
    target: str
    missing: tuple[str, ...]


def add_parser(subparsers: Any) -> None:
    """Add the ``export`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "export",
        help="a checkpoint's encoder as a timm / official Hiera state_dict or a safetensors file",
        description="Rebuild the model of a pretraining or fine-tuning checkpoint and write its "
        "encoder in the names of timm's SwinTransformer / Hiera or the official Hiera "
        "(torch.save, loads with only the classifier head missing), or as safetensors (the "
        "family's standard names, metadata in the header). Written atomically.",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a checkpoint (ckpt_*.pt, last.pt, best.pt) or a folder (its latest ckpt_*.pt)",
    )
    p.add_argument(
        "--to",
        required=True,
        choices=tuple(TARGETS),
        help="timm (Swin, Hiera), official (Hiera) or safetensors (every model)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="the file to write (.pt/.pth/.bin for timm and official, .safetensors)",
    )
    p.add_argument(
        "--with-decoder",
        action="store_true",
        help="keep the MAE decoder, in MAE's names",
    )
    p.set_defaults(run=run)


def _check_out(out: str, to: str, checkpoint: str) -> str:
    check_out("--out", out)
    if not out.lower().endswith(_SUFFIXES[to]):
        raise invalid("--out", f"a {' or '.join(_SUFFIXES[to])} file for --to {to}", out)
    if os.path.exists(out) and os.path.exists(checkpoint) and os.path.samefile(out, checkpoint):
        raise invalid("--out", "another file than --checkpoint", out)
    return out


def _as_options(exc: GroupingValueError) -> str:
    """The library's message with its argument names as this command's options."""
    name, sep, rest = str(exc).partition(": ")
    message = f"{_OPTIONS.get(name, name)}{sep}{rest}" if sep else str(exc)
    back = {naming: choice for choice, naming in TARGETS.items() if naming != "auto"}
    back["grouping"] = "safetensors"
    message = re.sub(r"to='(\w+)'", lambda m: f"--to {back.get(m[1], m[1])}", message)
    if name == "with_decoder":
        message = message.replace("expected False", "expected no --with-decoder")
        message = message.replace("received True", "received --with-decoder")
    return message


def _allowed(run: Mapping[str, Any], with_decoder: bool) -> list[str]:
    """The ``--to`` values the checkpoint's model accepts, tried on a weightless copy."""
    import torch

    from ..models.export import export_state_dict
    from ..models.registry import create_model

    with torch.device("meta"):
        model = create_model(run["model"], **dict(run.get("overrides") or {}))
    allowed = []
    for choice, naming in TARGETS.items():
        try:
            export_state_dict(model, to=naming, with_decoder=with_decoder)  # type: ignore[arg-type]
        except GroupingValueError:
            continue
        allowed.append(choice)
    return allowed


def _refused(
    exc: GroupingValueError, ckpt: Mapping[str, Any], args: argparse.Namespace
) -> GroupingValueError:
    """The command's error for a target or a decoder the model has no place for."""
    message = _as_options(exc)
    if not message.startswith("--to: "):
        return GroupingValueError(message)
    allowed = _allowed(ckpt["run"], args.with_decoder)
    if not allowed:
        return GroupingValueError(message)
    reason = message.partition(". ")[2].split(": use ")[0]
    return invalid(
        "--to",
        f"{' or '.join(allowed)} for {ckpt['run']['model']}",
        args.to,
        reason,
    )


def _result(out: str, to: str, state: Mapping[str, Any], meta: Mapping[str, str]) -> Exported:
    """What was written: the export's metadata, and the head keys its target lacks."""
    from ..models.export import DECODER_KEYS
    from ..models.registry import model_info

    family = _FAMILIES.get(model_info(meta["grouping_model"]).family, "other")
    names, contents = meta["names"], meta["contents"]
    if family == "Hiera" and names == "official" and contents == "encoder+decoder":
        target, head = "the official MaskedAutoencoderHiera", None
    else:
        target, head = _LOADS_INTO.get(
            (family, names), (f"grouping's {meta['grouping_model']} (strict)", None)
        )
    missing = () if head is None else (f"{head}.weight", f"{head}.bias")
    decoder = [k for k in state if any(k == n or k.startswith(n + ".") for n in DECODER_KEYS)]
    return Exported(
        path=out,
        file="safetensors" if to == "safetensors" else "torch.save",
        keys=len(state),
        model=meta["grouping_model"],
        family=family,
        names=names,
        contents=contents,
        decoder_keys=len(decoder) if contents == "encoder+decoder" else 0,
        target=target,
        missing=tuple(k for k in missing if k not in state),
    )


def text(result: Exported) -> str:
    """The line ``grouping export`` prints."""
    what = f"{result.model} ({result.family}) {result.contents} in {result.names} names"
    if result.decoder_keys:
        what += f", {result.decoder_keys} of the keys MAE's decoder"
    missing = ", ".join(result.missing) if result.missing else "nothing"
    return (
        f"grouping export: wrote {result.path} ({result.file}, {result.keys} keys): {what}; "
        f"loads into {result.target} missing {missing}"
    )


def run(args: argparse.Namespace) -> int:
    """Run the ``export`` subcommand: check, export, write, print; return the exit status."""
    out = _check_out(args.out, args.to, args.checkpoint)
    from ..train.checkpoint import resolve_checkpoint

    path = resolve_checkpoint(args.checkpoint)
    try:
        import torch

        from ..models.export import export_checkpoint, save_safetensors
        from ..models.registry import list_models
        from ..train.checkpoint import load_checkpoint
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise ImportError(f"grouping export needs torch ({exc})") from exc
    try:
        ckpt = load_checkpoint(path)
    except GroupingValueError as exc:
        raise GroupingValueError(_as_options(exc)) from None
    run_model = ckpt["run"].get("model") if isinstance(ckpt.get("run"), Mapping) else None
    if args.with_decoder and run_model in list_models(pretrain=False):
        raise invalid(
            "--with-decoder",
            "no --with-decoder for a classifier checkpoint (it has no MAE decoder)",
            f"{path}, a checkpoint of {run_model}",
        )
    naming: Any = TARGETS[args.to]
    try:
        state, meta = export_checkpoint(ckpt, to=naming, with_decoder=args.with_decoder)
    except GroupingValueError as exc:
        raise _refused(exc, ckpt, args) from None
    if args.to == "safetensors":
        write_atomic(out, lambda tmp: save_safetensors(state, tmp, meta))
    else:
        write_atomic(out, lambda tmp: torch.save(state, tmp))
    result = _result(out, args.to, state, meta)
    print(text(result))
    return 0
