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
"""Where each scale keeps its files in a checkpoint folder, and safe loading of them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_msgan.utils.atomic import atomic_path

__all__ = ["scale_dir", "generator_path", "checkpoint_path", "load_weights", "save_weights"]

GENERATOR_FILE = "generator.pt"
CHECKPOINT_FILE = "checkpoint.pt"


def scale_dir(ckpt_dir: str | os.PathLike, scale: int) -> Path:
    """Folder of scale ``scale`` (0 = base) inside ``ckpt_dir``."""
    return Path(ckpt_dir) / f"scale_{scale}"


def generator_path(ckpt_dir: str | os.PathLike, scale: int) -> Path:
    """The trained generator weights of one scale, written when its training completes."""
    return scale_dir(ckpt_dir, scale) / GENERATOR_FILE


def checkpoint_path(ckpt_dir: str | os.PathLike, scale: int) -> Path:
    """The resumable training state of one scale (networks, optimisers, engine state)."""
    return scale_dir(ckpt_dir, scale) / CHECKPOINT_FILE


def load_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code from the file runs).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when the file is not a readable weights file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated, or holding pickled objects
        raise ValueError(f"cannot read checkpoint {path} as a weights-only PyTorch file: {e}") from e
    if not isinstance(state, Mapping):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict of state dicts.")
    return dict(state)


def save_weights(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Save ``state`` with ``torch.save`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    return Path(path)
