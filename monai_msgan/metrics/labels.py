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
"""Intensities per label class: does a label-conditioned image put the right intensities where its labels say?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["label_statistics"]


def label_statistics(
    image: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Voxel count, mean, standard deviation and median of ``image`` inside each label value of ``labels``.

    Args:
        image: intensities (e.g. HU), any shape.
        labels: integer labels of the same shape.
        class_names: names of the label values ``0, 1, ...``; None = the values themselves as names. Values
            without a name are reported under their number.

    Returns:
        ``{class name: {"voxels", "mean", "std", "median"}}`` for every value present, in increasing order.
    """
    img = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float64)
    lab = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if img.shape != lab.shape:
        raise ValueError(f"image shape {img.shape} and label shape {lab.shape} differ.")
    if np.issubdtype(lab.dtype, np.floating) and not np.array_equal(lab, np.round(lab)):
        raise ValueError("labels hold non-integer values: not a label map.")
    lab = lab.astype(np.int64)
    out = {}
    for value in np.unique(lab):
        values = img[lab == value]
        name = class_names[value] if class_names is not None and 0 <= value < len(class_names) else str(int(value))
        out[name] = {
            "voxels": int(values.size),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "median": float(np.median(values)),
        }
    return out
