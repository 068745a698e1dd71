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
"""Reading MONAI datalists (``{"training": [{"image": ...}], "validation": [...]}``) with clear errors."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from monai_msgan.data.io import read_json

__all__ = ["load_datalist", "split_validation", "unique_names"]

T = TypeVar("T")


def split_validation(items: Sequence[T], val_fraction: float, seed: int = 0) -> tuple[list[T], list[T]]:
    """Draw ``round(val_fraction * len(items))`` items (at least one, and never all) for validation with ``seed``;
    the rest, in their order, are for training. With one item or ``val_fraction <= 0`` nothing is drawn."""
    items = list(items)
    if val_fraction <= 0 or len(items) < 2:
        return items, []
    n_val = min(len(items) - 1, max(1, round(val_fraction * len(items))))
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    picked = set(order[:n_val])
    return [x for i, x in enumerate(items) if i not in picked], [x for i, x in enumerate(items) if i in picked]


def unique_names(stems: Iterable[str]) -> list[str]:
    """The stems, with ``_1``, ``_2``, ... appended to repeats so that every name is unique."""
    used: set[str] = set()
    names = []
    for stem in stems:
        name, k = stem, 1
        while name in used:
            name, k = f"{stem}_{k}", k + 1
        used.add(name)
        names.append(name)
    return names


def load_datalist(
    dataset_dir: str | os.PathLike,
    key: str = "training",
    filename: str = "datalist.json",
    path_keys: tuple[str, ...] = ("image", "label", "condition"),
    allow_empty: bool = False,
) -> list[dict]:
    """Entries of ``dataset_dir/filename`` under ``key``, with relative paths made absolute against ``dataset_dir``.

    Raises:
        FileNotFoundError: when the datalist or a file it lists is missing (naming both).
        ValueError: when the datalist is malformed, a relative path leads outside ``dataset_dir``, or (unless
            ``allow_empty``) the section is empty.
    """
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: point dataset_dir at a folder made by data_scripts/prepare_xray.py "
            "(or make demo-data)."
        )
    data = read_json(path)
    if not isinstance(data, dict) or key not in data or not isinstance(data[key], list):
        raise ValueError(f"{path} has no list under '{key}'.")
    entries = []
    for i, item in enumerate(data[key]):
        if not isinstance(item, dict) or "image" not in item:
            raise ValueError(f"{path}: entry {i} of '{key}' is not a dict with an 'image' path.")
        entry = dict(item)
        for k in path_keys:
            if k in entry and isinstance(entry[k], str):
                p = Path(entry[k])
                if not p.is_absolute() and not (dataset_dir / p).resolve().is_relative_to(dataset_dir.resolve()):
                    raise ValueError(
                        f"{path}: '{key}' entry {i} lists {k} {entry[k]}, which lies outside {dataset_dir}; relative "
                        "paths must stay inside the dataset folder (give an absolute path to use another place)."
                    )
                p = p if p.is_absolute() else dataset_dir / p
                if not p.exists():
                    raise FileNotFoundError(
                        f"{path}: '{key}' entry {i} lists {k} {entry[k]}, which does not exist ({p})."
                    )
                entry[k] = str(p)
        entries.append(entry)
    if not entries and not allow_empty:
        raise ValueError(f"{path}: '{key}' is empty.")
    return entries
