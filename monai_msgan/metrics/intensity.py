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
"""Intensity fidelity: how far generated intensities are from real ones, and whether CT has air around the body."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

__all__ = ["body_mask", "body_solidity", "intensity_distance", "intensity_quantiles", "outside_body_air", "QUANTILES"]

QUANTILES = (0.01, 0.5, 0.99, 0.999)


def _values(x: torch.Tensor | np.ndarray, max_values: int, seed: int = 0) -> np.ndarray:
    """The intensities of ``x`` as a flat float64 array, subsampled (reproducibly) to at most ``max_values``."""
    v = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).ravel()
    if v.size > max_values:
        v = v[np.random.default_rng(seed).choice(v.size, max_values, replace=False)]
    return v


def _wasserstein_1d(a: np.ndarray, b: np.ndarray, num_quantiles: int = 1000) -> float:
    """1-Wasserstein distance of two 1-D samples: the mean gap between their quantile functions."""
    q = (np.arange(num_quantiles) + 0.5) / num_quantiles
    return float(np.abs(np.quantile(a, q) - np.quantile(b, q)).mean())


def intensity_distance(
    generated: Sequence[torch.Tensor] | torch.Tensor,
    real: Sequence[torch.Tensor] | torch.Tensor,
    max_values: int = 200_000,
) -> dict[str, float | list[float]]:
    """Distance between each generated image's intensity histogram and the pooled histogram of the real images.

    The distance is the 1-Wasserstein (earth mover's) distance between the two intensity distributions, in the
    images' own units (HU for CT, ``[0, 1]`` for radiographs): the mean amount by which intensities would have to
    move to turn one histogram into the other. A generated image whose intensities are all shifted by ``c`` scores
    ``c``; an image with the real image's histogram scores 0 (up to sampling). Unlike a bin-wise histogram
    difference it is not blind to how far mass has moved (an image that is all soft tissue instead of air and tissue
    scores by the HU gap, not by a saturated count).

    Args:
        generated: generated images, each ``(C, *spatial)`` (or a batch tensor).
        real: real images in the same units.
        max_values: intensities sampled per image for the quantiles (reproducible subsampling).

    Returns:
        ``{"mean": ..., "per_image": [...]}``.
    """
    real_values = np.concatenate([_values(r, max_values, seed=i) for i, r in enumerate(real)])
    per_image = [_wasserstein_1d(_values(g, max_values), real_values) for g in generated]
    if not per_image:
        raise ValueError("intensity_distance needs at least one generated image.")
    return {"mean": float(np.mean(per_image)), "per_image": per_image}


def intensity_quantiles(images: Sequence[torch.Tensor] | torch.Tensor, quantiles: Sequence[float] = QUANTILES) -> dict:
    """Quantiles of the pooled intensities of ``images`` (e.g. HU p1/p50/p99/p99.9: air, tissue, bone tops)."""
    values = np.concatenate([_values(x, 1_000_000, seed=i) for i, x in enumerate(images)])
    return {f"p{100 * q:g}": float(np.quantile(values, q)) for q in quantiles}


def body_mask(volume_hu: torch.Tensor | np.ndarray, threshold_hu: float = -500.0, slice_axis: int = -1) -> np.ndarray:
    """The body of a CT volume (3D, HU) as a boolean array: the largest connected region of voxels above
    ``threshold_hu``, with its holes filled slice by slice along ``slice_axis`` (the axial slices in RAS) and in 3D,
    so the lungs and airways count as inside."""
    v = np.asarray(volume_hu.detach().cpu() if isinstance(volume_hu, torch.Tensor) else volume_hu, dtype=np.float32)
    if v.ndim != 3:
        raise ValueError(f"body_mask needs a 3D volume, got shape {v.shape}.")
    labels, count = ndimage.label(v > threshold_hu)
    if count == 0:
        return np.zeros(v.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = np.moveaxis(labels == int(sizes.argmax()), slice_axis, 0)
    body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    return ndimage.binary_fill_holes(np.moveaxis(body, 0, slice_axis))


def _volume(volume_hu: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """``volume_hu`` as a float32 NumPy array without singleton axes; a ``ValueError`` naming ``name`` unless 3D."""
    v = np.asarray(volume_hu.detach().cpu() if isinstance(volume_hu, torch.Tensor) else volume_hu, dtype=np.float32)
    v = np.squeeze(v)
    if v.ndim != 3:
        raise ValueError(f"{name} needs a 3D volume, got shape {v.shape}.")
    return v


def _body(volume: np.ndarray, body: np.ndarray | None, threshold_hu: float, slice_axis: int) -> np.ndarray:
    """``body`` (checked against ``volume``) when given, else :func:`body_mask` of ``volume``."""
    if body is None:
        return body_mask(volume, threshold_hu, slice_axis)
    body = np.squeeze(np.asarray(body, dtype=bool))
    if body.shape != volume.shape:
        raise ValueError(f"the body mask's shape {body.shape} is not the volume's {volume.shape}.")
    return body


def body_solidity(
    volume_hu: torch.Tensor | np.ndarray,
    threshold_hu: float = -500.0,
    slice_axis: int = -1,
    min_area: int = 20,
    body: np.ndarray | None = None,
) -> float:
    """How convex a CT's body outline is: the median over slices along ``slice_axis`` (axial in RAS) of the body's
    area divided by the area of its convex hull, in ``[0, 1]``.

    The body is :func:`body_mask`'s (holes filled, so lungs count as inside); the hull's area is the number of pixel
    centres inside the convex hull of the body's pixel centres (as image-analysis libraries count it), so a convex
    outline scores 1. A real trunk's axial outline is nearly convex (about 0.97-1.0); a generator that draws bright
    loops, knots or broken shapes instead of a body scores far less, which intensity statistics, SWD and sample
    diversity do not see. Slices with fewer than ``min_area``
    body pixels are skipped; a volume without such a slice scores 0. ``body``: this volume's :func:`body_mask`
    when already computed (``threshold_hu`` is then not used).
    """
    v = _volume(volume_hu, "body_solidity")
    body = np.moveaxis(_body(v, body, threshold_hu, slice_axis), slice_axis, 0)
    ratios = []
    for mask in body:
        area = int(mask.sum())
        if area < min_area:
            continue
        edge = np.argwhere(mask & ~ndimage.binary_erosion(mask))  # the hull only depends on the outline
        try:
            planes = ConvexHull(edge).equations  # inside: normal . x + offset <= 0
        except QhullError:  # a single row or column of pixels
            continue
        lo, hi = edge.min(0), edge.max(0) + 1
        grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 2)
        hull_pixels = int(((grid @ planes[:, :2].T + planes[:, 2]) <= 1e-9).all(1).sum())
        ratios.append(min(1.0, area / hull_pixels))
    return float(np.median(ratios)) if ratios else 0.0


def outside_body_air(
    volume_hu: torch.Tensor | np.ndarray,
    air_hu: float = -1000.0,
    tolerance_hu: float = 50.0,
    body_threshold_hu: float = -500.0,
    slice_axis: int = -1,
    body: np.ndarray | None = None,
) -> dict[str, float]:
    """The fraction of a CT's outside-the-body voxels that are air (within ``tolerance_hu`` of ``air_hu``).

    The body is the largest connected region of voxels above ``body_threshold_hu`` with its holes filled slice by
    slice along ``slice_axis`` (the axial slices in RAS) and in 3D, so the lungs and airways count as inside.
    Everything else is outside, and should be air in a CT: the scanner's field of view around the patient.
    ``body``: this volume's :func:`body_mask` when already computed (``body_threshold_hu`` is then not used).

    Returns:
        ``outside_fraction``: the fraction of the volume outside the body (0 when the "body" fills the volume: no
        air around it at all); ``outside_air_fraction``: the fraction of those voxels within ``tolerance_hu`` of air
        (0 when there are none, which a real CT never gives).
    """
    v = _volume(volume_hu, "outside_body_air")
    outside = ~_body(v, body, body_threshold_hu, slice_axis)
    n_out = int(outside.sum())
    air = np.abs(v[outside] - air_hu) <= tolerance_hu
    return {
        "outside_fraction": n_out / v.size,
        "outside_air_fraction": float(air.mean()) if n_out else 0.0,
    }
