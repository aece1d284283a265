"""Training data: an image folder and synthetic images, indexed by position in the stream.

Every sample is addressed by a *key* ``(position, index)``: ``position`` is its place in the
training stream (global: step ``s`` of a run with global batch ``G`` holds positions
``s * G .. s * G + G - 1``, whatever the number of processes and workers), ``index`` the item
of the dataset it reads. Everything random about a sample (its augmentation, its mask) is drawn
from a generator seeded by ``(seed, stream, position)``, so the data of a step depends on the
seed and the step only: not on the number of workers or processes, and not on whether the run
was resumed.

Unreadable images: reading stops with :class:`UnreadableImageError` naming the file (a
``ValueError``); the run ends with that one-line message rather than training on a silently
changed dataset. Remove or fix the file and resume from the last checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..core.errors import GroupingValueError, as_int_tuple, check_int, invalid

__all__ = [
    "IMAGE_SUFFIXES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFolder",
    "picture_stats",
    "LabeledImageFolder",
    "StreamSampler",
    "SyntheticClips",
    "SyntheticImages",
    "UnreadableImageError",
    "class_folders",
    "image_files",
    "stream_rng",
    "check_images",
    "verify_images",
]

#: File suffixes read from an image folder (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # as MAE normalises
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Independent random streams per purpose, all seeded by (seed, stream, position or step).
_SHUFFLE, _AUGMENT, _SYNTHETIC, _CLIPS = 1, 2, 3, 6
MASK_STREAM, SHARED_MASK_STREAM, MIX_STREAM = 4, 5, 7


class UnreadableImageError(GroupingValueError):
    """An image of the data folder could not be read or decoded (the message names it)."""


def stream_rng(seed: int, stream: int, key: int) -> np.random.Generator:
    """The generator of one sample (or step) in one stream: PCG64 seeded by
    ``(seed, stream, key)``, the same on every machine."""
    return np.random.default_rng([int(seed), int(stream), int(key)])


def image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively, sorted), by suffix.

    Raises:
        GroupingValueError: if ``folder`` is not a folder or holds no image file.
    """
    if not isinstance(folder, (str, os.PathLike)) or not os.path.isdir(folder):
        raise invalid("data", "an existing folder of images", folder)
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(IMAGE_SUFFIXES):
                found.append(os.path.join(root, name))
    if not found:
        raise invalid(
            "data", f"a folder holding images ({', '.join(IMAGE_SUFFIXES)})", folder, "none found"
        )
    return sorted(found)


# 8-bit modes: Pillow's RGB conversion keeps their range exactly
_EIGHT_BIT = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _planes(img: Any, path: str) -> tuple[list[Any], float]:
    """The image as Pillow planes every mode's real range maps onto ``[0, 1]`` (after dividing
    by the returned scale): one RGB image for 8-bit modes (scale 255); for 16-bit and 32-bit
    integer and float greyscale one float ("F") plane, three times (scale 1).

    Raises:
        UnreadableImageError: naming the file and the mode for a mode with no known range
            (a float image outside ``[0, 1]``, a negative or wider-than-16-bit integer one).
    """
    mode = img.mode
    if mode in _EIGHT_BIT:
        return [img.convert("RGB")], 255.0
    if mode in _SIXTEEN_BIT or mode == "I":
        low, high = img.getextrema() if mode == "I" else (0, 65535)
        if mode == "I" and not (0 <= low and high <= 65535):
            raise UnreadableImageError(
                f"data: expected images of a known range, received {path!r}, a 32-bit integer "
                f"image with values {low}..{high} (beyond 16 bits). Convert it to 8 or 16 bits"
            )
        plane = _float_plane(np.asarray(img, dtype=np.float32) / 65535.0)
        return [plane] * 3, 1.0
    if mode == "F":
        low, high = img.getextrema()
        if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low and high <= 1.0):
            raise UnreadableImageError(
                f"data: expected images of a known range, received {path!r}, a float image "
                f"with values {low}..{high} (float images must lie in [0, 1])"
            )
        return [img] * 3, 1.0
    raise UnreadableImageError(
        f"data: expected images of a known range, received {path!r}, of Pillow mode "
        f"{mode!r}, whose range is unknown here. Convert it to RGB, 16-bit grey or float"
    )


def _unreadable(path: str, exc: BaseException) -> UnreadableImageError:
    """The one-line error of an image Pillow could not decode (or a range :func:`_planes`
    refused, passed through)."""
    from PIL import Image

    if isinstance(exc, UnreadableImageError):
        return exc
    if isinstance(exc, Image.DecompressionBombError):
        return UnreadableImageError(
            f"data: expected images of a safe size, received {path!r}, a decompression bomb ({exc})"
        )
    return UnreadableImageError(
        f"data: expected readable images, received {path!r}, which could not be read "
        f"({type(exc).__name__}: {exc}). Remove or fix the file and resume"
    )


def _float_plane(array: np.ndarray) -> Any:
    """A float ("F") Pillow image of a 2-D float32 array."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), mode="F")


def _crop_box(
    rng: np.random.Generator, width: int, height: int, scale: tuple[float, float]
) -> tuple[int, int, int, int]:
    """MAE's ``RandomResizedCrop`` box (torchvision's ``get_params``): area fraction in
    ``scale``, aspect ratio in ``[3/4, 4/3]`` (log-uniform); ``(left, top, w, h)``."""
    area = width * height
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    # fallback: the whole image cropped to the nearest allowed aspect ratio, centred
    ratio = width / height
    if ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif ratio > 4 / 3:
        h, w = height, round(height * (4 / 3))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


class ImageFolder(Dataset):
    """The images under a folder (recursively, by suffix), read with Pillow.

    Without augmentation an image is resized so that it covers ``size`` and centre-cropped;
    with ``augment=True`` it gets MAE's pretraining transform: a random resized crop (area
    20-100 %, aspect 3/4-4/3, bicubic) and a horizontal flip with probability 1/2, both drawn
    from the sample's own generator. Pixels are normalised with ImageNet's mean and std.

    Args:
        folder: the folder.
        size: output ``(H, W)`` (an int means square).
        augment: MAE's random resized crop and flip instead of the centre crop.
        seed: seed of the augmentations.
        crop_scale: the area range of the random resized crop (MAE's pretraining: 20-100 %;
            fine-tuning: timm's 8-100 %).
        crop_pct: without augmentation, the centre crop's share of the resized image's
            shorter side (1: resize to cover ``size``; MAE's evaluation: 0.875, 256 -> 224).

    Shape:
        ``dataset[(position, index)] -> (float32 [3, H, W], position)``.
    """

    def __init__(
        self,
        folder: str,
        size: int | tuple[int, int],
        *,
        augment: bool = False,
        seed: int = 0,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        crop_pct: float = 1.0,
    ) -> None:
        try:
            import PIL.Image  # noqa: F401  (fail early, with the install hint)
        except ImportError as exc:  # pragma: no cover - Pillow is in the test extras
            raise ImportError("--data needs Pillow: pip install 'grouping[images]'") from exc
        self.files = self._files(folder)
        self.size = as_int_tuple("size", size, 2)
        self.augment = bool(augment)
        self.seed = check_int("seed", seed, minimum=0)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        if not 0.0 < crop_pct <= 1.0:
            raise invalid("crop_pct", "a fraction in (0, 1]", crop_pct)
        self.crop_pct = float(crop_pct)

    def _files(self, folder: str) -> list[str]:
        return image_files(folder)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int, position: int) -> np.ndarray:
        """float32 ``[3, H, W]`` of file ``index``, transformed for stream ``position``."""
        from PIL import Image

        path = self.files[index]
        h, w = self.size
        try:
            with Image.open(path) as img:
                planes, scale = _planes(img, path)
                if self.augment:
                    rng = stream_rng(self.seed, _AUGMENT, position)
                    width, height = planes[0].size
                    left, top, cw, ch = _crop_box(rng, width, height, self.crop_scale)
                    box = (left, top, left + cw, top + ch)
                    planes = [p.resize((w, h), Image.BICUBIC, box=box) for p in planes]
                    if rng.random() < 0.5:
                        planes = [p.transpose(Image.FLIP_LEFT_RIGHT) for p in planes]
                else:
                    width, height = planes[0].size
                    factor = max(h / height, w / width) / self.crop_pct
                    new = (max(w, round(width * factor)), max(h, round(height * factor)))
                    method = Image.BILINEAR if self.crop_pct == 1 else Image.BICUBIC
                    left, top = (new[0] - w) // 2, (new[1] - h) // 2
                    planes = [
                        p.resize(new, method).crop((left, top, left + w, top + h)) for p in planes
                    ]
                if len(planes) == 1:
                    arr = np.asarray(planes[0], dtype=np.float32) / scale  # H, W, 3
                else:
                    arr = np.stack([np.asarray(p, dtype=np.float32) for p in planes], axis=-1)
                    arr = np.clip(arr, 0.0, 1.0)  # bicubic overshoot of a float plane
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise _unreadable(path, exc) from None
        return np.ascontiguousarray(((arr - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        position, index = key
        return torch.from_numpy(self.load(int(index), int(position))), int(position)


def class_folders(folder: str, name: str = "--data") -> tuple[list[str], list[list[str]]]:
    """The classes of an ImageFolder-layout folder (one subfolder per class) and their files.

    Args:
        folder: a folder whose subfolders are the classes (sorted by name, as torchvision's
            ``ImageFolder``); each holds its images, searched recursively.
        name: the option named in errors.

    Returns:
        ``(classes, files)``: the class names and, per class, its image files (sorted).

    Raises:
        GroupingValueError: for a missing folder, fewer than two classes, or a class without
            an image (each named).
    """
    if not isinstance(folder, (str, os.PathLike)) or not os.path.isdir(folder):
        raise invalid(name, "an existing folder with one subfolder per class", folder)
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if len(classes) < 2:
        raise invalid(
            name,
            "a folder with one subfolder per class, at least two classes",
            f"{folder!r} with {len(classes)} class folder(s)",
        )
    files = []
    for cls in classes:
        path = os.path.join(folder, cls)
        found = sorted(
            os.path.join(root, n)
            for root, _, names in os.walk(path)
            for n in names
            if n.lower().endswith(IMAGE_SUFFIXES)
        )
        if not found:
            raise invalid(name, "an image in every class folder", f"an empty class folder {path!r}")
        files.append(found)
    return classes, files


def check_images(
    files: Sequence[str],
    *,
    full: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Check every file as training reads it, its mode's range included, and return one
    message per file that fails (empty: all good).

    Args:
        files: the image files.
        full: decode every pixel (what ``--check-data`` does); else Pillow's structural
            ``verify`` and the mode's range (a float or 32-bit image is decoded for its
            values), which is fast enough to run before every fine-tuning or probe.
        progress: called with ``(done, total)`` after each file.
    """
    from PIL import Image

    bad = []
    for done, path in enumerate(files, 1):
        try:
            with Image.open(path) as img:
                if full or img.mode in ("F", "I"):
                    img.load()
                    _planes(img, path)
                else:
                    if img.mode not in _EIGHT_BIT + _SIXTEEN_BIT:
                        _planes(img, path)  # refuses the mode by name
                    img.verify()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            bad.append(str(_unreadable(path, exc)))
        if progress is not None:
            progress(done, len(files))
    return bad


def verify_images(files: Sequence[str]) -> None:
    """:func:`check_images` (``full=False``), before any work.

    Raises:
        UnreadableImageError: naming the first bad file, and how many are bad.
    """
    bad = check_images(files, full=False)
    if bad:
        more = f" ({len(bad)} bad files in all; grouping pretrain --check-data lists them)"
        raise UnreadableImageError(bad[0] + (more if len(bad) > 1 else ""))


class LabeledImageFolder(ImageFolder):
    """The images of an ImageFolder-layout folder with their class labels.

    Classes are the subfolders sorted by name (:func:`class_folders`); label ``k`` is the
    ``k``-th. Transforms are :class:`ImageFolder`'s; fine-tuning takes ``augment=True`` with
    ``crop_scale=(0.08, 1.0)`` (timm's) for training and ``crop_pct=0.875`` for evaluation.

    Args:
        folder: the folder of class folders.
        size: as :class:`ImageFolder`.
        classes: the classes expected (a validation folder must have the training folder's).
        name: the option named in errors (``--data``, ``--val``).
        **kwargs: ``augment``, ``seed``, ``crop_scale``, ``crop_pct`` of :class:`ImageFolder`.

    Shape:
        ``dataset[(position, index)] -> (float32 [3, H, W], position, label)``.
    """

    def __init__(
        self,
        folder: str,
        size: int | tuple[int, int],
        *,
        classes: Sequence[str] | None = None,
        name: str = "--data",
        **kwargs: Any,
    ) -> None:
        self.classes, per_class = class_folders(folder, name)
        if classes is not None and list(classes) != self.classes:
            raise invalid(
                name,
                f"the training folder's {len(classes)} classes {list(classes)[:5]}...",
                f"{len(self.classes)} classes {self.classes[:5]}...",
            )
        self._per_class = per_class
        self.labels = [k for k, files in enumerate(per_class) for _ in files]
        super().__init__(folder, size, **kwargs)

    def _files(self, folder: str) -> list[str]:
        return [f for files in self._per_class for f in files]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int]:  # type: ignore[override]
        position, index = key
        image = torch.from_numpy(self.load(int(index), int(position)))
        return image, int(position), self.labels[int(index)]


class SyntheticImages(Dataset):
    """Smooth random images (or clips), a deterministic function of ``(seed, position)``.

    Each channel is three random plane waves plus a little noise (values around ``[-1, 1]``);
    a clip's waves also move with the frame. Enough structure for a masked autoencoder to learn
    to fill in, with no files to read.

    Args:
        size: ``(H, W)`` for images (an int means square), ``(T, H, W)`` for clips.
        channels: channels ``C``.
        seed: the seed.

    Shape:
        ``dataset[(position, index)] -> (float32 [C, *size], position)``; the index is ignored
        (the stream never repeats).
    """

    def __init__(self, size: int | tuple[int, ...], channels: int = 3, *, seed: int = 0) -> None:
        ndim = 2 if isinstance(size, int) else len(tuple(size))
        if ndim not in (2, 3):
            raise invalid("size", "(H, W) or (T, H, W)", size)
        self.size = as_int_tuple("size", size, ndim)
        self.channels = check_int("channels", channels, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self._axes = [np.linspace(0.0, 1.0, n) for n in self.size]

    def __len__(self) -> int:  # an endless stream: the sampler never wraps it
        return 2**62

    def _wave(self, freq: np.ndarray, phase: float) -> np.ndarray:
        """``sin(2 pi (f . coords) + phase)`` over the grid, separably: the angle of the leading
        axes (a small array) and of the last axis meet through ``sin(a + b) = sin a cos b +
        cos a sin b``, so the cost is one multiply-add per pixel, not one sine."""
        *lead, last = [2 * np.pi * f * a for f, a in zip(freq, self._axes, strict=True)]
        head = np.zeros([len(a) for a in lead]) + phase  # [*size[:-1]]
        for axis, angles in enumerate(lead):
            shape = [1] * len(lead)
            shape[axis] = -1
            head = head + angles.reshape(shape)
        head = head[..., None]
        return np.sin(head) * np.cos(last) + np.cos(head) * np.sin(last)

    def image(self, position: int) -> np.ndarray:
        """float32 ``[C, *size]`` of stream ``position``."""
        rng = stream_rng(self.seed, _SYNTHETIC, position)
        freq = rng.uniform(1, 8, size=(self.channels, 3, len(self.size)))
        phase = rng.uniform(0, 2 * np.pi, size=(self.channels, 3))
        out = 0.05 * rng.standard_normal((self.channels, *self.size), dtype=np.float32)
        for c in range(self.channels):
            waves = sum(self._wave(freq[c, k], phase[c, k]) for k in range(3))
            out[c] += (waves / 3).astype(np.float32)
        return out

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        position = int(key[0])
        return torch.from_numpy(self.image(position)), position


def picture_stats(dataset: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` per channel that turn ``dataset``'s images back into ``[0, 1]``
    pictures (``x * std + mean``): ImageNet's for image folders (what :class:`ImageFolder`
    normalises with), 0.5 and 0.5 for :class:`SyntheticImages` (waves in about ``[-1, 1]``)."""
    if isinstance(dataset, SyntheticImages):
        return (0.5,) * dataset.channels, (0.5,) * dataset.channels
    return tuple(float(v) for v in IMAGENET_MEAN), tuple(float(v) for v in IMAGENET_STD)


class StreamSampler(Sampler[list[tuple[int, int]]]):
    """Batches of sample keys for one process, from ``start_step`` up to ``steps``.

    Step ``s`` holds the global positions ``s * G + r * B + j`` for process ``r`` (``G = W * B``
    the global batch, ``j < B``). Position ``p`` reads item ``perm_e[p % n]`` of an ``n``-item
    dataset, ``perm_e`` a permutation drawn for epoch ``e = p // n`` from ``(seed, e)`` (or
    the identity without ``shuffle``); an endless dataset (``num_items=None``) reads item
    ``p``. So a run on ``W`` processes with batch ``B`` sees the samples of one process with
    batch ``W * B``, and resuming at step ``s`` continues the same stream.

    Args:
        num_items: dataset size, or None for an endless stream.
        batch_size: per-process batch ``B``.
        steps: the total number of steps of the run.
        rank: this process, ``0 <= rank < world_size``.
        world_size: processes ``W``.
        seed: shuffling seed.
        shuffle: shuffle every epoch.
        start_step: the first step to yield (a resumed run's checkpoint step).
    """

    def __init__(
        self,
        num_items: int | None,
        batch_size: int,
        steps: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        start_step: int = 0,
    ) -> None:
        self.num_items = None if num_items is None else check_int("num_items", num_items, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.steps = check_int("steps", steps, minimum=0)
        self.world_size = check_int("world_size", world_size, minimum=1)
        self.rank = check_int("rank", rank, minimum=0)
        if self.rank >= self.world_size:
            raise invalid("rank", f"a rank below world_size={self.world_size}", rank)
        self.seed = check_int("seed", seed, minimum=0)
        self.shuffle = bool(shuffle)
        self.start_step = check_int("start_step", start_step, minimum=0)
        self._perms: dict[int, np.ndarray] = {}

    @property
    def global_batch(self) -> int:
        """``G = W * B``."""
        return self.world_size * self.batch_size

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0)

    def item(self, position: int) -> int:
        """The dataset item read at stream ``position``."""
        if self.num_items is None:
            return position
        epoch, offset = divmod(position, self.num_items)
        if not self.shuffle:
            return offset
        if epoch not in self._perms:
            self._perms = {
                epoch: stream_rng(self.seed, _SHUFFLE, epoch).permutation(self.num_items)
            }
        return int(self._perms[epoch][offset])

    def keys(self, step: int) -> list[tuple[int, int]]:
        """The ``(position, item)`` keys of this process at ``step``."""
        first = step * self.global_batch + self.rank * self.batch_size
        return [(p, self.item(p)) for p in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.steps):
            yield self.keys(step)


class SyntheticClips(Dataset):
    """Synthetic video + audio + label clips, a deterministic function of ``(seed, position)``.

    The label ``k`` is drawn first; the video is plane waves whose temporal frequency grows
    with ``k`` (so the label can be read off the video), the audio a sine of frequency
    ``k + 1`` cycles per frame plus noise: something a multimodal autoencoder can learn to
    reconstruct and classify.

    Args:
        frames: ``T`` of the video ``[T, C, H, W]``.
        size: ``H = W`` of the square video frames.
        channels: ``C`` of the video.
        audio_samples: audio samples per clip.
        num_labels: classes.
        seed: the seed.

    Shape:
        ``dataset[(position, index)] -> ({"image": [T, C, H, W], "audio": [S], "label": [K]
        one-hot}, position)``.
    """

    def __init__(
        self,
        frames: int,
        size: int,
        channels: int,
        audio_samples: int,
        num_labels: int,
        *,
        seed: int = 0,
    ) -> None:
        self.frames = check_int("frames", frames, minimum=1)
        self.images = SyntheticImages((self.frames, size, size), channels, seed=seed)
        self.channels = channels
        self.audio_samples = check_int("audio_samples", audio_samples, minimum=1)
        self.num_labels = check_int("num_labels", num_labels, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)

    def __len__(self) -> int:
        return 2**62

    def clip(self, position: int) -> dict[str, np.ndarray]:
        """The clip of stream ``position`` as numpy arrays."""
        rng = stream_rng(self.seed, _CLIPS, position)
        label = int(rng.integers(self.num_labels))
        video = self.images.image(position)  # C, T, H, W
        t = np.linspace(0.0, 1.0, self.frames)[None, :, None, None]
        video = video * np.cos(2 * np.pi * (label + 1) * t / 4).astype(np.float32)
        n = self.audio_samples
        s = np.arange(n) / (n / self.frames)
        audio = np.sin(2 * np.pi * (label + 1) * s + rng.uniform(0, 2 * np.pi))
        audio = audio + 0.05 * rng.standard_normal(n)
        one_hot = np.zeros(self.num_labels, dtype=np.float32)
        one_hot[label] = 1.0
        return {
            "image": np.ascontiguousarray(video.transpose(1, 0, 2, 3)),  # T, C, H, W
            "audio": audio.astype(np.float32),
            "label": one_hot,
        }

    def __getitem__(self, key: tuple[int, int]) -> tuple[dict[str, torch.Tensor], int]:
        position = int(key[0])
        return {k: torch.from_numpy(v) for k, v in self.clip(position).items()}, position


def stack_images(samples: Sequence[tuple[Any, int]]) -> tuple[Any, list[int]]:
    """``[(input, position), ...]`` -> ``(batch, positions)``: tensors stacked (``[B, ...]``),
    dicts of tensors stacked key by key."""
    first = samples[0][0]
    if isinstance(first, dict):
        batch: Any = {k: torch.stack([x[k] for x, _ in samples]) for k in first}
    else:
        batch = torch.stack([x for x, _ in samples])
    return batch, [int(p) for _, p in samples]
