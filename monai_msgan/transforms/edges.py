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
"""Edge maps ("sketches") of images, the condition of sketch-to-image translation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_tensor, ensure_tuple

__all__ = ["EdgeMap", "EdgeMapd", "EdgeMapD", "EdgeMapDict", "gradient_magnitude"]

#: torch.quantile refuses inputs larger than this; larger images are subsampled with a stride first.
_QUANTILE_MAX_ELEMENTS = 2**24


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gradient_magnitude(img: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gradient magnitude of a channel-first 2D/3D image after Gaussian smoothing (``sigma`` in pixels, 0 = none),
    from central differences with replicated borders; the maximum over channels, as ``(1, *spatial)``."""
    img = convert_to_tensor(img, dtype=torch.float32, track_meta=False)
    nd = img.ndim - 1
    if nd not in (2, 3):
        raise ValueError(f"EdgeMap expects a channel-first 2D or 3D image, got shape {tuple(img.shape)}.")
    x = img[:, None]  # channels as batch: (C, 1, *spatial)
    conv = F.conv2d if nd == 2 else F.conv3d
    if sigma > 0:
        k = _gaussian_kernel(sigma).to(x.device)
        r = (k.numel() - 1) // 2
        for d in range(nd):  # separable smoothing, one axis at a time
            shape = [1, 1] + [1] * nd
            shape[2 + d] = k.numel()
            pad = [0, 0] * nd
            pad[2 * (nd - 1 - d)] = pad[2 * (nd - 1 - d) + 1] = r
            x = conv(F.pad(x, pad, mode="replicate"), k.view(shape))
    grad_sq = torch.zeros_like(x)
    for d in range(nd):
        pad = [0, 0] * nd
        pad[2 * (nd - 1 - d)] = pad[2 * (nd - 1 - d) + 1] = 1
        xp = F.pad(x, pad, mode="replicate")
        n = x.shape[2 + d]
        grad_sq += ((xp.narrow(2 + d, 2, n) - xp.narrow(2 + d, 0, n)) / 2) ** 2
    return grad_sq.sqrt().amax(dim=0)


class EdgeMap(Transform):
    """Edge map of a channel-first 2D or 3D image, in ``[0, 1]``, as the sketch condition of translation models.

    The gradient magnitude of the Gaussian-smoothed image (:func:`gradient_magnitude`) is divided by its
    ``quantile`` over the image (so the map does not depend on the intensity scale). With ``binary=True``
    (the default) pixels at or above that level become 1 and the rest 0: the strongest ``1 - quantile`` fraction
    of the image's gradients, a binary sketch. With ``binary=False`` the ratio is clipped to ``[0, 1]`` (soft edges).

    Args:
        sigma: Gaussian smoothing in pixels before differentiation (suppresses noise and fine texture).
        quantile: gradient quantile that counts as an edge, in ``(0, 1)``.
        binary: binary sketch (True) or soft edge strength (False).
    """

    def __init__(self, sigma: float = 1.0, quantile: float = 0.9, binary: bool = True) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be non-negative, got {sigma}.")
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile}.")
        self.sigma = sigma
        self.quantile = quantile
        self.binary = binary

    def __call__(self, img: Any) -> torch.Tensor:
        mag = gradient_magnitude(img, self.sigma)
        flat = mag.reshape(-1)
        if flat.numel() > _QUANTILE_MAX_ELEMENTS:
            flat = flat[:: -(-flat.numel() // _QUANTILE_MAX_ELEMENTS)]
        level = float(torch.quantile(flat, self.quantile))
        if level <= 0:  # flat image (or almost): no edges
            return torch.zeros_like(mag)
        if self.binary:
            return (mag >= level).to(torch.float32)
        return (mag / level).clamp_(0.0, 1.0)


class EdgeMapd(MapTransform):
    """Dictionary version of :class:`EdgeMap`: writes the edge map of each of ``keys`` to the matching
    ``edge_keys`` entry (e.g. ``keys="image", edge_keys="condition"``), keeping the image."""

    def __init__(
        self,
        keys: KeysCollection,
        edge_keys: KeysCollection,
        sigma: float = 1.0,
        quantile: float = 0.9,
        binary: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.edge_keys = ensure_tuple(edge_keys)
        if len(self.edge_keys) != len(self.keys):
            raise ValueError(f"edge_keys needs one key per key: {len(self.keys)} keys, {len(self.edge_keys)} given.")
        self.edges = EdgeMap(sigma, quantile, binary)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, edge_key in self.key_iterator(d, self.edge_keys):
            d[edge_key] = self.edges(d[key])
        return d


EdgeMapD = EdgeMapDict = EdgeMapd
