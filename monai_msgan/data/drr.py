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
"""Digitally reconstructed radiographs (DRRs): simulated frontal chest X-rays rendered from a CT volume."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["load_ct_ras", "render_drr", "MU_WATER_PER_MM"]

#: Linear attenuation of water at about 70 keV, per mm.
MU_WATER_PER_MM = 0.0206


def load_ct_ras(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Load a CT NIfTI as a float32 HU volume in RAS axis order (axis 0 → patient right, 1 → anterior,
    2 → superior) with its voxel spacing in mm.

    Raises:
        ValueError: naming the file, when it is not a 3D volume.
    """
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.as_closest_canonical(nib.load(path))
        vol = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:
        raise ValueError(f"{path}: cannot read NIfTI: {e}") from e
    if vol.ndim != 3:
        raise ValueError(f"{path}: expected a 3D CT volume, got shape {vol.shape}.")
    return vol, tuple(float(z) for z in img.header.get_zooms()[:3])


def render_drr(
    volume_hu: np.ndarray,
    spacing: Sequence[float],
    angle_deg: float = 0.0,
    mu_water: float = MU_WATER_PER_MM,
    air_hu: float = -1000.0,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Render a frontal (PA) DRR by parallel projection through a CT volume rotated about its long axis.

    Each voxel's linear attenuation is ``mu_water * (1 + HU / 1000)`` (zero for air); the DRR is the line
    integral of attenuation along the anterior-posterior axis, the log-domain quantity a processed radiograph
    shows (bone and soft tissue bright, lungs dark). Values below ``air_hu`` (e.g. -2048 outside the scan's field
    of view) count as air. The result is resampled to square pixels of the in-plane spacing.

    Args:
        volume_hu: ``(x, y, z)`` HU volume in RAS axis order (see :func:`load_ct_ras`).
        spacing: voxel spacing in mm.
        angle_deg: rotation of the patient about the superior-inferior axis before projecting; 0 = PA view.
        mu_water: attenuation of water per mm.
        air_hu: HU of air.

    Returns:
        ``(rows, columns)`` float32 image, rows from head to feet, columns from the patient's right to left
        (the usual view of a PA film), and its pixel spacing (row, column) in mm.
    """
    from scipy import ndimage

    sx, sy, sz = (float(s) for s in spacing)
    vol = np.maximum(np.asarray(volume_hu, dtype=np.float32), air_hu)
    if abs(sx - sy) > 1e-3 * max(sx, sy):  # make the rotation plane isotropic
        vol = ndimage.zoom(vol, (sx / min(sx, sy), sy / min(sx, sy), 1.0), order=1)
        sx = sy = min(sx, sy)
    if angle_deg:
        vol = ndimage.rotate(vol, angle_deg, axes=(0, 1), reshape=False, order=1, mode="constant", cval=air_hu)
    mu = np.maximum(vol / 1000.0 + 1.0, 0.0) * mu_water
    projection = mu.sum(axis=1) * sy  # (x, z): line integral along anterior-posterior
    # rows: superior -> inferior; columns: patient right -> left (RAS axis 0 points right, so reverse it)
    image = projection[::-1, ::-1].T
    if abs(sz - sx) > 1e-3 * sx:
        image = ndimage.zoom(image, (sz / sx, 1.0), order=1)
    return np.ascontiguousarray(image, dtype=np.float32), (sx, sx)
