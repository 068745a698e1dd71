# Copyright (c) monai-msgan contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Where each scale keeps its files in a checkpoint folder, and safe, integrity-checked saving and loading of them.

Every file written by :func:`save_weights` carries, under :data:`INTEGRITY_KEY`, the SHA-256 of its content (every
key, dtype, shape and tensor byte, in a fixed order). :func:`load_weights` recomputes it and checks that every
floating-point value is finite, so a file whose bytes were damaged, or one holding NaN/Inf weights, is refused with
an error naming the file (and its scale) instead of loading silently. The entry is removed from what it returns.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from monai_msgan.utils.atomic import atomic_path

__all__ = [
    "INTEGRITY_KEY",
    "CheckpointIntegrityError",
    "NonFiniteError",
    "checkpoint_path",
    "describe",
    "find_non_finite",
    "generator_path",
    "load_weights",
    "save_weights",
    "scale_dir",
    "state_digest",
]

GENERATOR_FILE = "generator.pt"
CHECKPOINT_FILE = "checkpoint.pt"
#: Reserved key of the integrity record (``{"sha256": hex digest, "format": 1}``) in every saved file.
INTEGRITY_KEY = "__integrity__"
_FORMAT = 1
_logger = logging.getLogger(__name__)


class CheckpointIntegrityError(ValueError):
    """A weights file is damaged: unreadable, or its content does not match its recorded SHA-256."""


class NonFiniteError(ValueError):
    """Weights, losses, gradients or an image hold NaN or infinite values."""


def scale_dir(ckpt_dir: str | os.PathLike, scale: int) -> Path:
    """Folder of scale ``scale`` (0 = base) inside ``ckpt_dir``."""
    return Path(ckpt_dir) / f"scale_{scale}"


def generator_path(ckpt_dir: str | os.PathLike, scale: int) -> Path:
    """The trained generator weights of one scale, written when its training completes."""
    return scale_dir(ckpt_dir, scale) / GENERATOR_FILE


def checkpoint_path(ckpt_dir: str | os.PathLike, scale: int) -> Path:
    """The resumable training state of one scale (networks, optimisers, engine state, random states)."""
    return scale_dir(ckpt_dir, scale) / CHECKPOINT_FILE


def describe(path: str | os.PathLike) -> str:
    """``path``, followed by ``(scale s)`` when it lies in a ``scale_<s>`` folder."""
    path = Path(path)
    m = re.fullmatch(r"scale_(\d+)", path.parent.name)
    return f"{path} (scale {m[1]})" if m else str(path)


def _items(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of nested dicts/lists/tuples, with dotted names, in a fixed order (dict keys sorted as strings)."""
    if isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            yield from _items(obj[k], f"{prefix}{k}.")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _items(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], obj


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 of a (nested) state: every key, and every value's type, dtype, shape and bytes, in a fixed order."""
    h = hashlib.sha256()
    for name, value in _items({k: v for k, v in state.items() if k != INTEGRITY_KEY}):
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        else:
            h.update(f"|{type(value).__name__}|{value!r}|".encode())
    return h.hexdigest()


def find_non_finite(state: Any) -> str | None:
    """Name of the first floating-point tensor (or float) in ``state`` holding NaN or Inf, or None."""
    for name, value in _items(state):
        if isinstance(value, torch.Tensor):
            if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
                return name
        elif isinstance(value, float) and not math.isfinite(value):
            return name
    return None


def load_weights(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", require_integrity: bool = False
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code from the file runs), check it, and return it.

    The SHA-256 recorded by :func:`save_weights` is recomputed and compared, and every floating-point value must be
    finite. Files written before integrity records existed load with a warning (or are refused with
    ``require_integrity``).

    Raises:
        FileNotFoundError: when the file does not exist.
        CheckpointIntegrityError: (a ``ValueError``) when the file is unreadable, truncated or its content does not
            match its SHA-256, naming the file and scale.
        NonFiniteError: (a ``ValueError``) when a weight is NaN or infinite, naming the file, scale and tensor.
    """
    path = Path(path)
    where = describe(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {where} does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated, empty, or holding pickled objects
        raise CheckpointIntegrityError(
            f"cannot read checkpoint {where} as a weights-only PyTorch file (damaged, truncated or not a "
            f"checkpoint): {e}"
        ) from e
    if not isinstance(state, Mapping):
        raise CheckpointIntegrityError(
            f"checkpoint {where} holds a {type(state).__name__}, expected a dict of state dicts."
        )
    state = dict(state)
    record = state.pop(INTEGRITY_KEY, None)
    if record is None:
        if require_integrity:
            raise CheckpointIntegrityError(
                f"checkpoint {where} has no integrity record (SHA-256); it was not saved by monai-msgan's save_weights."
            )
        _logger.warning(f"{where} has no integrity record (written by an older version): its SHA-256 is not checked.")
    else:
        expected = record.get("sha256") if isinstance(record, Mapping) else None
        actual = state_digest(state)
        if expected != actual:
            raise CheckpointIntegrityError(
                f"checkpoint {where} is damaged: the SHA-256 of its content is {actual}, but {expected} was recorded "
                "when it was written. Restore it from a backup or train this scale again (delete the file)."
            )
    bad = find_non_finite(state)
    if bad is not None:
        raise NonFiniteError(f"checkpoint {where} holds NaN or infinite values in '{bad}'; refusing to use it.")
    return state


def save_weights(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Save ``state`` with ``torch.save`` atomically (temporary file, then rename), with its SHA-256 under
    :data:`INTEGRITY_KEY`.

    Raises:
        NonFiniteError: when a floating-point value is NaN or infinite; nothing is written and the previous file,
            if any, stays as it was.
        OSError: naming the file when it cannot be written (disk full, permission denied, read-only).
    """
    path = Path(path)
    if INTEGRITY_KEY in state:
        raise ValueError(f"'{INTEGRITY_KEY}' is reserved for the integrity record.")
    bad = find_non_finite(state)
    if bad is not None:
        raise NonFiniteError(
            f"refusing to write {describe(path)}: '{bad}' holds NaN or infinite values; the previous file, if any, "
            "is kept."
        )
    out = dict(state)
    out[INTEGRITY_KEY] = {"sha256": state_digest(out), "format": _FORMAT}
    with atomic_path(path) as tmp:
        torch.save(out, tmp)
    return path
