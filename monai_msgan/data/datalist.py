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
from pathlib import Path

from monai_msgan.data.io import read_json

__all__ = ["load_datalist"]


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
        ValueError: when the datalist is malformed or (unless ``allow_empty``) the section is empty.
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
                p = p if p.is_absolute() else dataset_dir / p
                if not p.exists():
                    raise FileNotFoundError(f"{path}: '{key}' entry {i} lists {k} {entry[k]}, which does not exist ({p}).")
                entry[k] = str(p)
        entries.append(entry)
    if not entries and not allow_empty:
        raise ValueError(f"{path}: '{key}' is empty.")
    return entries
