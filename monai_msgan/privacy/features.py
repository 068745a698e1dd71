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
"""Descriptors for the privacy audit: intensity-normalised image grids, their shifted/flipped variants and
detrended patch descriptors, compared by ``1 - Pearson correlation`` with chunked nearest-neighbour search.

Every descriptor is a zero-mean unit-norm vector, so the distance of two descriptors is ``1 - a·b`` (0 for
identical content up to a linear intensity change, 1 for uncorrelated content, 2 for inverted content).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "as_spatial",
    "infer_spatial_dims",
    "normalise_intensity",
    "canonical_grid",
    "gaussian_blur",
    "unit_rows",
    "grid_variants",
    "variant_offsets",
    "variant_flips",
    "patch_descriptors",
    "nearest",
    "PatchIndex",
]


def infer_spatial_dims(image: np.ndarray | torch.Tensor) -> int:
    """Guess 2 or 3 spatial dimensions: 2D for ``(H, W)`` and ``(C, H, W)`` with C ≤ 4, 3D for ``(D, H, W)`` and
    ``(C, D, H, W)``.

    Raises:
        ValueError: for arrays of other ranks.
    """
    shape = tuple(image.shape)
    if len(shape) == 2:
        return 2
    if len(shape) == 4:
        return 3
    if len(shape) == 3:
        return 2 if shape[0] <= 4 else 3
    raise ValueError(f"an image of shape {shape} is neither 2D nor 3D (expected (C, *spatial) or (*spatial)).")


def as_spatial(image: np.ndarray | torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """The image as a float32 tensor without channel axis (channels averaged), on the CPU.

    Raises:
        ValueError: when the rank does not fit ``spatial_dims`` or the image holds NaN/inf.
    """
    t = image.as_tensor() if hasattr(image, "as_tensor") else image  # MONAI MetaTensor -> plain tensor
    t = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t).detach().cpu().float()
    if t.ndim == spatial_dims + 1:
        t = t.mean(0)
    elif t.ndim != spatial_dims:
        raise ValueError(
            f"an image of shape {tuple(t.shape)} is not {spatial_dims}D: expected (C, *spatial) or (*spatial)."
        )
    if min(t.shape) < 1:
        raise ValueError(f"an image of shape {tuple(t.shape)} is empty.")
    if not torch.isfinite(t).all():
        raise ValueError("the image holds NaN or infinite values.")
    return t


def normalise_intensity(image: torch.Tensor, lower: float = 0.01, upper: float = 0.99) -> torch.Tensor | None:
    """Map the ``lower``/``upper`` quantiles of ``image`` to 0/1, so any linear intensity change (HU, 8/16 bit,
    [0, 1], [-1, 1]) gives the same image. Values beyond are limited to [-1, 2] only (clipping at 0/1 would turn a
    region pasted from a brighter image into a flat one). Returns ``None`` for an image without contrast."""
    flat = image.reshape(-1)
    step = max(1, math.ceil(flat.numel() / 1_000_000))  # torch.quantile's input limit; a strided sample suffices
    lo, hi = torch.quantile(flat[::step], torch.tensor([lower, upper])).tolist()
    if hi - lo <= 1e-6 * max(1.0, abs(hi), abs(lo)):
        return None
    return ((image - lo) / (hi - lo)).clamp_(-1.0, 2.0)


def canonical_grid(image: torch.Tensor, size: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Resize ``image`` (spatial, normalised) so that its longest side is ``size`` (keeping the aspect ratio; area
    averaging when shrinking) and pad it, centred, with 0 to ``size`` along every axis.

    This is the geometry the bundles train on (``Resized(size_mode="longest")`` + ``ResizeWithPadOrCropd``).

    Returns:
        the grid ``(1, 1, *[size]*d)`` and, per axis, the ``(start, stop)`` of the image inside the padding.
    """
    d = image.ndim
    x = image[None, None]
    scale = size / max(image.shape)
    new = [max(1, min(size, round(s * scale))) for s in image.shape]
    if list(image.shape) != new:
        mode = "area" if all(n <= s for n, s in zip(new, image.shape)) else ("bilinear" if d == 2 else "trilinear")
        x = F.interpolate(x, size=new, mode=mode, **({} if mode == "area" else {"align_corners": False}))
    box = [((size - n) // 2, (size - n) // 2 + n) for n in new]
    pad = [p for (start, stop) in reversed(box) for p in (start, size - stop)]
    return (F.pad(x, pad, value=0.0) if any(pad) else x), box


def gaussian_blur(grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(1, 1, *S)`` (edge values replicated), which makes the comparison of two
    grids tolerant to sub-pixel misalignment and to pixel noise."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    d = grid.ndim - 2
    conv = F.conv2d if d == 2 else F.conv3d
    for axis in range(d):
        shape = [1, 1] + [1] * d
        shape[2 + axis] = kernel.numel()
        pad = [0, 0] * d
        pad[2 * (d - 1 - axis)] = pad[2 * (d - 1 - axis) + 1] = radius
        grid = conv(F.pad(grid, pad, mode="replicate"), kernel.reshape(shape))
    return grid


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows centred and scaled to unit norm (rows without variation become zero: distance 1 to everything)."""
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)


def grid_variants(grid: torch.Tensor, max_shift: int, flips: bool, shifts: bool = True) -> torch.Tensor:
    """Unit descriptors of the central ``S - 2 * max_shift`` pixels of ``grid`` (``(1, 1, *S)``), that window shifted
    by every offset in ``[-max_shift, max_shift]`` along each axis and, with ``flips``, the grid flipped along every
    subset of the axes first: ``(V, prod(S - 2 * max_shift))`` with ``V = (2 * max_shift + 1) ** d * (2 ** d if
    flips else 1)``. Comparing windows (rather than padding shifted grids) leaves out the border strips that a shift
    moves out of view. The unshifted, unflipped window is first; ``shifts=False`` returns only the unshifted
    windows."""
    d = grid.ndim - 2
    size = [n - 2 * max_shift for n in grid.shape[2:]]
    if min(size) < 1:
        raise ValueError(f"max_shift {max_shift} leaves nothing of a grid of size {list(grid.shape[2:])}.")
    axes = [tuple(a + 2 for a in axis) for axis in variant_flips(d, flips)]
    offsets = variant_offsets(max_shift if shifts else 0, d)
    out = []
    for axis in axes:
        g = grid.flip(axis) if axis else grid
        for off in offsets:
            sl = tuple(slice(max_shift + o, max_shift + o + n) for o, n in zip(off, size))
            out.append(g[(0, 0, *sl)].reshape(-1))
    return unit_rows(torch.stack(out))


def variant_offsets(max_shift: int, d: int) -> list[tuple[int, ...]]:
    """The shifts of :func:`grid_variants`, smallest first."""
    return sorted(itertools.product(range(-max_shift, max_shift + 1), repeat=d), key=lambda o: sum(map(abs, o)))


def variant_flips(d: int, flips: bool) -> list[tuple[int, ...]]:
    """The flipped spatial axes of :func:`grid_variants` (0-based), in its order."""
    return [()] + ([c for k in range(1, d + 1) for c in itertools.combinations(range(d), k)] if flips else [])


def _trend_basis(size: int, d: int) -> torch.Tensor:
    """Orthonormal basis (d + 1, size**d) of constant and linear functions on a ``size**d`` grid."""
    c = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    coords = torch.meshgrid(*([c] * d), indexing="ij")
    basis = torch.stack([torch.ones(size**d)] + [x.reshape(-1) for x in coords])
    return basis / basis.norm(dim=1, keepdim=True)  # the centred coordinates are already orthogonal to each other


def patch_descriptors(
    grid: torch.Tensor,
    patch_size: int,
    stride: int,
    pool: int = 1,
    box: list[tuple[int, int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Patches of ``grid`` (``(1, 1, *S)``) every ``stride`` pixels, each average-pooled by ``pool``, with its best-fit
    plane removed (so smooth ramps, which every image has, carry no signal) and scaled to unit norm. With ``box``
    (per axis ``(start, stop)``, from :func:`canonical_grid`), only patches inside it are kept: a patch that
    straddles the padding would match the padding edge of any other image.

    Returns:
        descriptors ``(M, (patch_size // pool) ** d)``, patch corners ``(M, d)`` on the grid, and each patch's
        structure (standard deviation after detrending, in normalised intensity units) ``(M,)``.
    """
    d = grid.ndim - 2
    x = grid[0, 0]
    for axis in range(d):
        x = x.unfold(axis, patch_size, stride)
    counts = x.shape[:d]
    x = x.reshape(-1, 1, *([patch_size] * d))
    if pool > 1:
        x = (F.avg_pool2d if d == 2 else F.avg_pool3d)(x, pool)
    x = x.reshape(x.shape[0], -1)
    x = x - (x @ (basis := _trend_basis(patch_size // pool, d)).T) @ basis
    structure = x.norm(dim=1) / math.sqrt(x.shape[1])
    corners = torch.stack(torch.meshgrid(*[torch.arange(n) * stride for n in counts], indexing="ij"), -1).reshape(-1, d)
    desc = x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)
    if box is not None:
        inside = torch.ones(corners.shape[0], dtype=torch.bool)
        for axis, (start, stop) in enumerate(box):
            inside &= (corners[:, axis] >= start) & (corners[:, axis] + patch_size <= stop)
        desc, corners, structure = desc[inside], corners[inside], structure[inside]
    return desc, corners, structure


def nearest(
    queries: torch.Tensor, index: torch.Tensor, exclude: torch.Tensor | None = None, chunk_elements: int = 1 << 24
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each unit-norm query row, its smallest distance ``1 - q·t`` to the rows of ``index`` and that row's index,
    computed in chunks of about ``chunk_elements`` similarities (memory stays bounded for any index size).

    Args:
        queries: ``(Q, K)`` float32.
        index: ``(M, K)`` (float16 or float32; chunks are computed in float32).
        exclude: optional boolean ``(M,)``: rows that are never matched (leave-one-out).

    Returns:
        distances ``(Q,)`` (``inf`` where every row is excluded) and indices ``(Q,)`` (``-1`` there).
    """
    q = queries.float()
    best = torch.full((q.shape[0],), -math.inf)
    arg = torch.full((q.shape[0],), -1, dtype=torch.long)
    step = max(1, chunk_elements // max(1, q.shape[0]))
    for start in range(0, index.shape[0], step):
        sims = q @ index[start : start + step].float().T
        if exclude is not None:
            sims[:, exclude[start : start + step]] = -math.inf
        value, which = sims.max(dim=1)
        better = value > best
        best = torch.where(better, value, best)
        arg = torch.where(better, which + start, arg)
    return 1.0 - best, arg


class PatchIndex:
    """Nearest-neighbour search over unit-norm rows: exact (chunked) for small indexes, else an inverted file.

    The inverted file clusters the rows with spherical k-means (``sqrt(M)`` clusters, trained on a sample) and
    compares each query only with the rows of its ``nprobe`` closest clusters. A near-copy of an indexed row lies
    next to it and so falls in the same cluster: copies are found as by exact search, while the distances of
    unrelated queries can only come out larger (their true nearest row may sit in an unvisited cluster).

    Args:
        rows: ``(M, K)`` unit-norm descriptors (kept as given, e.g. float16).
        owners: ``(M,)`` the training image of each row (for leave-one-out exclusion).
        exact_limit: indexes with at most this many rows are searched exhaustively.
        nprobe: clusters visited per query.
        seed: for the k-means initialisation and sample.
    """

    def __init__(
        self, rows: torch.Tensor, owners: torch.Tensor, exact_limit: int = 10_000, nprobe: int = 16, seed: int = 0
    ) -> None:
        self.rows, self.owners = rows, owners
        self.nprobe = nprobe
        self.centroids: torch.Tensor | None = None
        if rows.shape[0] > exact_limit:
            self._build(seed)

    def _build(self, seed: int, iterations: int = 10) -> None:
        m = self.rows.shape[0]
        num = int(round(math.sqrt(m)))
        g = torch.Generator().manual_seed(seed)
        sample = self.rows[torch.randperm(m, generator=g)[: 64 * num]].float()
        centroids = sample[torch.randperm(sample.shape[0], generator=g)[:num]].clone()
        for _ in range(iterations):
            assign = (sample @ centroids.T).argmax(1)
            sums = torch.zeros_like(centroids).index_add_(0, assign, sample)
            empty = sums.norm(dim=1) < 1e-8
            sums[empty] = centroids[empty]  # keep a centroid that lost all its points
            centroids = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-8)
        assign = torch.cat([(self.rows[i : i + 65536].float() @ centroids.T).argmax(1) for i in range(0, m, 65536)])
        order = torch.argsort(assign, stable=True)
        self.rows, self.owners = self.rows[order], self.owners[order]
        self.order = order
        counts = torch.bincount(assign, minlength=num)
        self.starts = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.centroids = centroids

    def search(self, queries: torch.Tensor, exclude_owner: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per query its smallest distance ``1 - q·r`` and the row's position in the original ``rows`` (``inf``/``-1``
        when nothing is found), ignoring rows of ``exclude_owner``."""
        exclude = (self.owners == exclude_owner) if exclude_owner is not None else None
        if self.centroids is None:
            return nearest(queries, self.rows, exclude=exclude)
        q = queries.float()
        probes = (q @ self.centroids.T).topk(min(self.nprobe, self.centroids.shape[0]), dim=1).indices
        best = torch.full((q.shape[0],), -math.inf)
        arg = torch.full((q.shape[0],), -1, dtype=torch.long)
        for c in torch.unique(probes).tolist():
            start, stop = int(self.starts[c]), int(self.starts[c + 1])
            if start == stop:
                continue
            who = (probes == c).any(1).nonzero()[:, 0]
            sims = q[who] @ self.rows[start:stop].float().T
            if exclude is not None:
                sims[:, exclude[start:stop]] = -math.inf
            value, which = sims.max(1)
            better = value > best[who]
            best[who[better]] = value[better]
            arg[who[better]] = self.order[which[better] + start]
        return 1.0 - best, arg
