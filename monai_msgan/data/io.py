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

__all__ = [
    "radiograph_affine",
    "volume_affine",
    "save_nifti",
    "NiftiStreamWriter",
    "save_png_preview",
    "mid_planes",
    "montage",
    "preview_plane",
    "write_json",
    "read_json",
]

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


def volume_affine(spacing: Sequence[float], size: Sequence[int]) -> np.ndarray:
    """RAS NIfTI affine of a volume stored in RAS axis order (axis 0 → patient right, 1 → anterior, 2 → superior,
    as after MONAI's ``Orientationd(axcodes="RAS")``) with voxel ``spacing`` mm, centred on the origin."""
    spacing = np.asarray([float(s) for s in spacing])
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(size, dtype=float) - 1) / 2 * spacing
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


class NiftiStreamWriter:
    """Write a NIfTI file slab by slab along the last spatial axis, without holding the image.

    NIfTI stores voxels with the first axis fastest, so consecutive slabs along the last axis are consecutive
    bytes: the header goes first, then each slab as it arrives. The file is written under a temporary name and
    renamed when every slab is in (``close``); on error it is removed. Use as a context manager.

    Args:
        path: the ``.nii`` or ``.nii.gz`` file.
        spatial_size: full size of the image.
        affine: 4×4 affine.
        dtype: on-disk data type (slabs are cast to it).
        overwrite: replace an existing file.
        compresslevel: gzip level for ``.nii.gz`` (1 = fast).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        spatial_size: Sequence[int],
        affine: np.ndarray,
        dtype: Any = np.float32,
        overwrite: bool = False,
        compresslevel: int = 1,
    ) -> None:
        self.path = check_writable(path, overwrite)
        self.spatial_size = tuple(int(s) for s in spatial_size)
        self.dtype = np.dtype(dtype)
        self.header = nib.Nifti1Header()
        self.header.set_data_shape(self.spatial_size)
        self.header.set_data_dtype(self.dtype)
        self.header.set_qform(np.asarray(affine, dtype=np.float64), code=1)
        self.header.set_sform(np.asarray(affine, dtype=np.float64), code=1)
        self.header.set_xyzt_units("mm")
        self.header["descrip"] = SYNTHETIC_DESCRIPTION
        self.header["vox_offset"] = 352
        self.compresslevel = compresslevel
        self.written = 0
        self._ctx = None
        self._file = None

    def __enter__(self) -> NiftiStreamWriter:
        import gzip

        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        gz = str(self.path).endswith(".gz")
        self._file = gzip.open(tmp, "wb", compresslevel=self.compresslevel) if gz else open(tmp, "wb")
        self._file.write(self.header.binaryblock)
        self._file.write(b"\0" * (352 - len(self.header.binaryblock)))  # no extensions
        return self

    def write(self, slab: np.ndarray | torch.Tensor) -> None:
        """Append a slab ``(*spatial_size[:-1], depth)``."""
        if isinstance(slab, torch.Tensor):
            slab = slab.detach().cpu().numpy()
        if tuple(slab.shape[:-1]) != self.spatial_size[:-1]:
            raise ValueError(f"slab of shape {slab.shape} does not fit an image of size {self.spatial_size}.")
        if self.written + slab.shape[-1] > self.spatial_size[-1]:
            raise ValueError(f"too many slabs: {self.written + slab.shape[-1]} > {self.spatial_size[-1]} slices.")
        self._file.write(np.asarray(slab, dtype=self.dtype).tobytes(order="F"))
        self.written += slab.shape[-1]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._file.close()  # flushes the last compressed bytes: may fail (disk full)
        except BaseException as e:
            self._ctx.__exit__(type(e), e, e.__traceback__)  # removes the temporary and re-raises, naming the file
            raise
        if exc_type is None and self.written != self.spatial_size[-1]:
            exc = ValueError(f"{self.path}: {self.written} of {self.spatial_size[-1]} slices were written.")
            self._ctx.__exit__(type(exc), exc, None)
            raise exc
        self._ctx.__exit__(exc_type, exc, tb)


def mid_planes(image: torch.Tensor) -> list[torch.Tensor]:
    """The planes a preview shows, in (x, y) layout: a 2D image itself; for 3D the axial, coronal and sagittal
    middle slices (the latter two flipped so that superior is up)."""
    img = torch.as_tensor(image)[0]
    if img.ndim == 2:
        return [img]
    if img.ndim == 3:
        x, y, z = img.shape
        return [img[:, :, z // 2], img[:, y // 2, :].flip(-1), img[x // 2, :, :].flip(-1)]
    raise ValueError(f"cannot preview an image with {img.ndim} spatial dims.")


def montage(planes: list[torch.Tensor], max_size: int) -> torch.Tensor:
    """Planes in (x, y) layout side by side as one ``(rows, columns)`` float image, shrunk by area averaging to at
    most ``max_size`` pixels a side (each plane is shrunk before any copy)."""
    planes = [torch.as_tensor(p).float() for p in planes]
    factor = max(1, -(-max(sum(p.shape[0] for p in planes), max(p.shape[1] for p in planes)) // max_size))
    if factor > 1:
        planes = [
            F.avg_pool2d(p[None, None, : p.shape[0] // factor * factor, : p.shape[1] // factor * factor], factor)[0, 0]
            for p in planes
        ]
    planes = [p.transpose(0, 1) for p in planes]  # (x, y) -> (rows, columns)
    if len(planes) == 1:
        return planes[0]
    height = max(p.shape[0] for p in planes)
    return torch.cat([F.pad(p, (0, 0, 0, height - p.shape[0])) for p in planes], dim=1)


def preview_plane(image: torch.Tensor, max_size: int) -> torch.Tensor:
    """A ``(rows, columns)`` float view of a ``(C, *spatial)`` image for a PNG: 2D images as they are, 3D images as
    their three orthogonal middle slices side by side; shrunk by area averaging to at most ``max_size`` pixels."""
    return montage(mid_planes(image), max_size)


def save_png_preview(
    image: torch.Tensor | None,
    path: str | os.PathLike,
    value_range: tuple[float, float] = (0.0, 1.0),
    max_size: int = 2048,
    overwrite: bool = False,
    planes: list[torch.Tensor] | None = None,
) -> Path:
    """Write an 8-bit greyscale PNG of ``image`` (``(C, *spatial)``), or of ``planes`` (see :func:`mid_planes`),
    mapping ``value_range`` to 0..255."""
    from PIL import Image

    path = check_writable(path, overwrite)
    plane = montage(planes, max_size) if planes is not None else preview_plane(image, max_size)
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
