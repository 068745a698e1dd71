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
"""Paired fidelity (translation tasks) and sample diversity, through MONAI's metrics."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from monai.metrics import MAEMetric, MultiScaleSSIMMetric, PSNRMetric, SSIMMetric

__all__ = ["paired_fidelity", "pairwise_diversity", "MSSSIM_MIN_SIZE"]

#: MONAI's MultiScaleSSIMMetric (5 scales, 11-pixel kernel) needs images larger than this on every side.
MSSSIM_MIN_SIZE = 161


def _batch(x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return (x if isinstance(x, torch.Tensor) else torch.stack(list(x))).float()


def paired_fidelity(fake, real, data_range: float = 1.0) -> dict[str, float]:
    """SSIM, PSNR and MAE of generated images against their real counterparts (``(B, C, *spatial)``), averaged."""
    fake, real = _batch(fake), _batch(real)
    if fake.shape != real.shape:
        raise ValueError(f"generated {tuple(fake.shape)} and real {tuple(real.shape)} images differ in shape.")
    nd = fake.ndim - 2
    return {
        "ssim": float(SSIMMetric(spatial_dims=nd, data_range=data_range)(fake, real).mean()),
        "psnr": float(PSNRMetric(max_val=data_range)(fake, real).mean()),
        "mae": float(MAEMetric()(fake, real).mean()),
    }


def pairwise_diversity(samples, data_range: float = 1.0) -> dict[str, float | str]:
    """Structural similarity over all pairs of generated samples: MS-SSIM when every side is at least
    :data:`MSSSIM_MIN_SIZE`, SSIM otherwise. Lower means more diverse; 1 means identical samples.

    Returns the mean and the median over pairs. One sample unlike all others (a broken one beside a collapsed
    rest) lowers the mean a lot and the median little: read a low mean with a high median as collapse.
    """
    samples = _batch(samples)
    if samples.shape[0] < 2:
        raise ValueError("diversity needs at least two samples.")
    nd = samples.ndim - 2
    multi = min(samples.shape[2:]) >= MSSSIM_MIN_SIZE
    metric = (
        MultiScaleSSIMMetric(spatial_dims=nd, data_range=data_range)
        if multi
        else SSIMMetric(spatial_dims=nd, data_range=data_range)
    )
    pairs = list(itertools.combinations(range(samples.shape[0]), 2))
    a = samples[[i for i, _ in pairs]]
    b = samples[[j for _, j in pairs]]
    values = metric(a, b).flatten()
    return {
        "metric": "ms-ssim" if multi else "ssim",
        "mean": float(values.mean()),
        "median": float(values.median()),
        "pairs": len(pairs),
    }
