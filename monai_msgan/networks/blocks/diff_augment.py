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
"""Differentiable augmentation in front of a discriminator, with the probability adapted to its overfitting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DiscriminatorAugment", "AUGMENTATIONS", "check_intensity_strength"]

AUGMENTATIONS = ("translation", "cutout", "intensity")


def check_intensity_strength(
    brightness: float, contrast: float, names: tuple[str, str] = ("brightness", "contrast")
) -> None:
    """Refuse an ``"intensity"`` strength other than ``brightness >= 0`` and ``0 <= contrast < 1`` (NaN included),
    naming the options as ``names`` (the trainer's and the bundles' ids differ from the module's arguments)."""
    if not brightness >= 0.0 or not 0.0 <= contrast < 1.0:
        raise ValueError(f"{names[0]} must be >= 0 and {names[1]} in [0, 1), got {brightness} and {contrast}.")


class DiscriminatorAugment(nn.Module):
    """Augments every batch the discriminator sees, real and fake alike, with operations that gradients flow through.

    With few real images a discriminator memorises them and its feedback to the generator becomes useless.
    Augmenting *both* real and generated inputs (DiffAugment, Zhao et al. 2020), with the generator's gradients
    passing through the augmentation, stops that without teaching the generator to produce augmented images, as
    long as the probability ``p`` stays below about 0.8 (Karras et al. 2020, adaptive discriminator augmentation).
    Each operation is applied to each sample independently with probability ``p``:

    - ``"translation"``: an integer shift of up to ``translation`` of the size along every axis, the uncovered
      border filled with ``fill`` (the model-range background: air in CT, black on a radiograph);
    - ``"cutout"``: a box of ``cutout`` of the size per axis, at a random centre, set to ``fill``;
    - ``"intensity"``: brightness (added ``U(-brightness, brightness)``, by default ``U(-0.25, 0.25)``) and contrast
      (scaled ``U(1 - contrast, 1 + contrast)`` about the sample's mean, by default ``U(0.5, 1.5)``), on the first
      ``intensity_channels`` channels only (image and coarse image; conditions such as label maps keep their values).

    Geometric operations move every channel together, so the alignment of an image with its coarse input and
    condition is kept.

    ``p`` adapts when ``target`` is set: :meth:`update` collects the sign of the discriminator's real-image
    outputs relative to ``midpoint`` (``r_t = E[sign(D(real) - midpoint)]``, the overfitting heuristic of adaptive
    discriminator augmentation) and every ``interval`` updates moves ``p`` up when ``r_t > target`` and down
    otherwise, by ``interval / speed`` (``p`` can go from 0 to 1 in ``speed`` iterations). ``p`` and the running
    statistics are buffers, so they are saved with the checkpoint and restored on resume.

    Works for 2D and 3D ``(B, C, *spatial)`` batches.

    Args:
        spatial_dims: 2 or 3.
        policy: the operations, a subset of :data:`AUGMENTATIONS` (a comma-separated string or a sequence).
        p: initial (or, without ``target``, fixed) probability.
        target: target of ``r_t`` for the adaptive probability; None = fixed ``p``.
        interval: discriminator updates between adjustments.
        speed: iterations for ``p`` to move by 1 at the full rate.
        max_p: upper bound of the adaptive ``p``.
        translation: largest shift as a fraction of the size.
        cutout: box size as a fraction of the size.
        intensity_channels: channels that get intensity changes; None = all.
        fill: value of uncovered and cut-out voxels.
        midpoint: the discriminator output between its real and fake targets (0.5 for least squares with targets
            1/0, 0 for logits).
        brightness: largest brightness shift of ``"intensity"``, in model units (0.25 of the model range [-1, 1] is
            about 510 HU on the CT bundle's scale).
        contrast: largest relative contrast change of ``"intensity"`` (below 1).
    """

    def __init__(
        self,
        spatial_dims: int,
        policy: str | Sequence[str] = AUGMENTATIONS,
        p: float = 0.0,
        target: float | None = 0.6,
        interval: int = 4,
        speed: int = 500,
        max_p: float = 0.8,
        translation: float = 0.125,
        cutout: float = 0.5,
        intensity_channels: int | None = None,
        fill: float = -1.0,
        midpoint: float = 0.5,
        brightness: float = 0.25,
        contrast: float = 0.5,
    ) -> None:
        super().__init__()
        if isinstance(policy, str):
            policy = [s.strip() for s in policy.split(",") if s.strip()]
        unknown = sorted(set(policy) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}.")
        if not 0.0 <= p <= 1.0 or not 0.0 <= max_p <= 1.0:
            raise ValueError(f"p and max_p must be in [0, 1], got {p} and {max_p}.")
        if interval < 1 or speed < 1:
            raise ValueError(f"interval and speed must be at least 1, got {interval} and {speed}.")
        check_intensity_strength(brightness, contrast)
        self.spatial_dims = spatial_dims
        self.policy = tuple(policy)
        self.target = target
        self.interval = interval
        self.speed = speed
        self.max_p = max_p
        self.translation = translation
        self.cutout = cutout
        self.intensity_channels = intensity_channels
        self.fill = fill
        self.midpoint = midpoint
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("sign_sum", torch.tensor(0.0))
        self.register_buffer("sign_count", torch.tensor(0.0))
        self.register_buffer("updates", torch.tensor(0, dtype=torch.long))

    @property
    def probability(self) -> float:
        """The current augmentation probability."""
        return float(self.p)

    @property
    def overfitting(self) -> float | None:
        """The last complete ``r_t`` estimate (None before the first)."""
        return getattr(self, "_last_rt", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = float(self.p)
        if p <= 0.0 or not self.policy:
            return x
        for op in self.policy:
            x = getattr(self, f"_{op}")(x, self._chosen(x, p))
        return x

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor | Sequence[torch.Tensor]) -> None:
        """Collect the discriminator's outputs on (augmented) real inputs; adjust ``p`` every ``interval`` calls."""
        if self.target is None:
            return
        outs = [real_logits] if isinstance(real_logits, torch.Tensor) else list(real_logits)
        signs = torch.cat([torch.sign(o.detach().float() - self.midpoint).flatten() for o in outs])
        self.sign_sum += signs.sum().cpu()
        self.sign_count += signs.numel()
        self.updates += 1
        if int(self.updates) % self.interval == 0 and float(self.sign_count) > 0:
            rt = float(self.sign_sum / self.sign_count)
            self._last_rt = rt
            step = self.interval / self.speed * (1.0 if rt > self.target else -1.0)
            self.p.fill_(min(max(float(self.p) + step, 0.0), self.max_p))
            self.sign_sum.zero_()
            self.sign_count.zero_()

    @staticmethod
    def _chosen(x: torch.Tensor, p: float) -> torch.Tensor:
        """Per-sample Bernoulli(p) choice, shaped to broadcast over ``x``."""
        b = x.shape[0]
        return (torch.rand(b, device=x.device) < p).reshape(b, *([1] * (x.ndim - 1)))

    def _translation(self, x: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        b, nd = x.shape[0], x.ndim - 2
        sizes = x.shape[2:]
        # integer shifts, expressed in affine_grid's normalised coordinates (axes in reverse order: x, y[, z])
        theta = torch.zeros(b, nd, nd + 1, device=x.device, dtype=torch.float32)
        for i in range(nd):
            theta[:, i, i] = 1.0
        for axis, n in enumerate(sizes):
            limit = int(n * self.translation)
            shift = torch.randint(-limit, limit + 1, (b,), device=x.device) if limit > 0 else torch.zeros(b)
            theta[:, nd - 1 - axis, nd] = 2.0 * shift.to(theta) / n
        theta = theta * chosen.reshape(b, 1, 1) + theta.new_tensor(_identity(nd)) * (~chosen).reshape(b, 1, 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False).to(x.dtype)
        moved = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + self.fill

    def _cutout(self, x: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        box = torch.ones((b, 1, *x.shape[2:]), dtype=torch.bool, device=x.device)
        for axis, n in enumerate(x.shape[2:]):
            half = max(1, int(n * self.cutout / 2))
            centre = torch.randint(0, n, (b,), device=x.device)
            coords = torch.arange(n, device=x.device)
            inside = (coords[None] - centre[:, None]).abs() < half  # (b, n)
            shape = [b, 1] + [1] * (x.ndim - 2)
            shape[2 + axis] = n
            box = box & inside.reshape(shape)
        return torch.where(box & chosen, torch.full_like(x, self.fill), x)

    def _intensity(self, x: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        k = x.shape[1] if self.intensity_channels is None else min(self.intensity_channels, x.shape[1])
        img = x[:, :k]
        shape = (b, 1, *([1] * (x.ndim - 2)))
        # written so that the defaults draw exactly the values of earlier releases
        brightness = (torch.rand(shape, device=x.device, dtype=x.dtype) - 0.5) * (2.0 * self.brightness)
        contrast = torch.rand(shape, device=x.device, dtype=x.dtype) * (2.0 * self.contrast) + (1.0 - self.contrast)
        mean = img.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
        changed = (img - mean) * contrast + mean + brightness
        img = torch.where(chosen, changed, img)
        return img if k == x.shape[1] else torch.cat([img, x[:, k:]], dim=1)


def _identity(nd: int) -> list[list[float]]:
    return [[1.0 if i == j else 0.0 for j in range(nd + 1)] for i in range(nd)]
