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
"""Writing images: NIfTI with a chosen geometry, PNG previews and JSON records, always atomically.

Arrays follow MONAI's layout: spatial axis 0 is x (image columns), axis 1 is y (rows), axis 2 is z.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from monai_msgan.utils.atomic import atomic_path, check_writable

__all__ = ["radiograph_affine", "save_nifti", "save_png_preview", "preview_plane", "write_json", "read_json"]

SYNTHETIC_DESCRIPTION = b"synthetic image, monai-msgan"


def radiograph_affine(spacing: Sequence[float]) -> np.ndarray:
    """NIfTI affine of a 2D frontal radiograph stored as (columns, rows).

    Columns run from the patient's right to left (how a PA chest film is viewed) and rows from head to feet, so
    the image is a coronal plane: axis 0 points to patient-left (-x in RAS), axis 1 to inferior (-z).
    """
    sx, sy = (float(s) for s in spacing)
    affine = np.zeros((4, 4))
    affine[0, 0] = -sx
    affine[2, 1] = -sy
    affine[1, 2] = -1.0
    affine[3, 3] = 1.0
    return affine


def save_nifti(
    array: np.ndarray | torch.Tensor,
    affine: np.ndarray,
    path: str | os.PathLike,
    overwrite: bool = False,
    dtype: Any = None,
) -> Path:
    """Write a spatial array (no channel axis) to NIfTI atomically; refuses to replace a file unless ``overwrite``.

    The header carries the geometry and a description marking the image as synthetic, nothing else.
    """
    path = check_writable(path, overwrite)
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    img = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64))
    img.header["descrip"] = SYNTHETIC_DESCRIPTION
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return path


def preview_plane(image: torch.Tensor, max_size: int) -> torch.Tensor:
    """A ``(rows, columns)`` float view of a ``(C, *spatial)`` image for a PNG: 2D images as they are, 3D images as
    their three orthogonal middle slices side by side; shrunk by area averaging to at most ``max_size`` pixels."""
    img = torch.as_tensor(image)[0].float()
    if img.ndim == 2:
        planes = [img]
    elif img.ndim == 3:
        x, y, z = img.shape
        # axial (x, y), coronal (x, z), sagittal (y, z): shown with superior up.
        planes = [img[:, :, z // 2], img[:, y // 2, :].flip(-1), img[x // 2, :, :].flip(-1)]
    else:
        raise ValueError(f"cannot preview an image with {img.ndim} spatial dims.")
    factor = max(1, -(-max(sum(p.shape[0] for p in planes), max(p.shape[1] for p in planes)) // max_size))
    if factor > 1:  # shrink each plane first: a large image is never copied at full size
        planes = [F.avg_pool2d(p[None, None, : p.shape[0] // factor * factor, : p.shape[1] // factor * factor],
                               factor)[0, 0] for p in planes]
    planes = [p.transpose(0, 1) for p in planes]  # (x, y) -> (rows, columns)
    if len(planes) == 1:
        return planes[0]
    height = max(p.shape[0] for p in planes)
    return torch.cat([F.pad(p, (0, 0, 0, height - p.shape[0])) for p in planes], dim=1)


def save_png_preview(
    image: torch.Tensor,
    path: str | os.PathLike,
    value_range: tuple[float, float] = (0.0, 1.0),
    max_size: int = 2048,
    overwrite: bool = False,
) -> Path:
    """Write an 8-bit greyscale PNG of ``image`` (``(C, *spatial)``), mapping ``value_range`` to 0..255."""
    from PIL import Image

    path = check_writable(path, overwrite)
    plane = preview_plane(image, max_size)
    lo, hi = value_range
    u8 = (plane - lo).mul_(255.0 / (hi - lo)).round_().clamp_(0, 255).to(torch.uint8).contiguous().numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(u8, mode="L").save(tmp, format="PNG")
    return path


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON atomically (indented, keys in the given order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
