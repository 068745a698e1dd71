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
"""Planted copies of training images, to test that an audit finds them: disguised whole copies and pasted patches.

Use them to check the audit on your own data before trusting it (``docs/privacy.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monai_msgan.privacy.audit import PrivacyAudit

__all__ = ["disguised_copy", "pasted_patch", "planted_copy_rates"]


def _spatial(image: Any) -> np.ndarray:
    a = np.asarray(image.as_tensor() if hasattr(image, "as_tensor") else image, dtype=np.float32)
    return a


def disguised_copy(
    image: np.ndarray,
    rng: np.random.Generator,
    max_shift: int = 4,
    noise: float = 0.03,
    gain: tuple[float, float] = (0.7, 1.3),
    gamma: tuple[float, float] = (0.85, 1.15),
) -> np.ndarray:
    """A copy of ``image`` (spatial array, no channel axis) shifted by 1 to ``max_shift`` pixels along every axis
    (edge values repeated), flipped along one random axis, passed through a random gamma and linear intensity change
    (gain and an offset of up to 10% of its range) and given Gaussian noise of ``noise`` times its range
    (1st-99th percentile)."""
    a = _spatial(image)
    lo, hi = np.percentile(a, [1, 99])
    span = max(float(hi - lo), 1e-6)
    shifts = rng.integers(1, max_shift + 1, size=a.ndim) * rng.choice([-1, 1], size=a.ndim)
    pad = [(int(abs(s)), int(abs(s))) for s in shifts]
    a = np.pad(a, pad, mode="edge")
    a = a[tuple(slice(p[0] + s, p[0] + s + n) for p, s, n in zip(pad, shifts, image.shape))]
    a = np.flip(a, axis=int(rng.integers(a.ndim)))
    u = np.clip((a - lo) / span, 0, 1) ** rng.uniform(*gamma)
    a = (u * span * rng.uniform(*gain) + lo + rng.uniform(-0.1, 0.1) * span).astype(np.float32)
    return a + rng.normal(0.0, noise * span, size=a.shape).astype(np.float32)


def pasted_patch(
    host: np.ndarray, source: np.ndarray, rng: np.random.Generator, fraction: float = 0.25, tries: int = 8
) -> np.ndarray:
    """``host`` (an image that is not a copy) with a region of ``source`` (a training image), ``fraction`` of its
    side along every axis, pasted at a random place; values are copied as they are. The region is the most
    structured (largest standard deviation) of ``tries`` random ones: copying a featureless region reveals nothing.
    Both are spatial arrays of the same rank; the region is measured in ``source`` pixels."""
    host, source = _spatial(host).copy(), _spatial(source)
    size = [max(1, round(fraction * s)) for s in source.shape]
    if any(z > h for z, h in zip(size, host.shape)):
        raise ValueError(f"a {size} region does not fit into the host of shape {host.shape}.")
    regions = [
        tuple(
            slice(c, c + z) for c, z in zip((int(rng.integers(0, s - z + 1)) for s, z in zip(source.shape, size)), size)
        )
        for _ in range(tries)
    ]
    region = source[max(regions, key=lambda r: float(source[r].std()))]
    dst = [int(rng.integers(0, h - z + 1)) for h, z in zip(host.shape, size)]
    host[tuple(slice(d, d + z) for d, z in zip(dst, size))] = region
    return host


def planted_copy_rates(
    audit: PrivacyAudit,
    training: Sequence[np.ndarray],
    unseen: Sequence[np.ndarray],
    seed: int = 0,
    copies_per_image: int = 1,
    patch_fraction: float = 0.25,
    copy_shift: int = 4,
) -> dict[str, Any]:
    """Flag rates of ``audit`` on disguised copies and pasted patches of ``training`` images (spatial arrays, the
    ones the audit indexed) and on ``unseen`` real images (not trained on, not used for calibration). Pasted patches
    go into the unseen images, each receiving regions of training images in turn.

    Returns:
        ``copies``, ``patches``, ``unseen``: each ``{"n", "flagged", "rate", "distances"}`` (``distances`` of the
        check that should fire: global for copies, local for patches, both for unseen images).
    """
    rng = np.random.default_rng(seed)
    if not unseen:
        raise ValueError("planted_copy_rates needs unseen real images (hosts for pasted patches, and the 0% check).")
    copies = [
        audit.check(disguised_copy(t, rng, max_shift=copy_shift)) for t in training for _ in range(copies_per_image)
    ]
    patches = [
        audit.check(pasted_patch(unseen[k % len(unseen)], t, rng, patch_fraction))
        for k, t in enumerate(x for x in training for _ in range(copies_per_image))
    ]
    real = [audit.check(u) for u in unseen]

    def rate(results: list[dict], keys: tuple[str, ...]) -> dict[str, Any]:
        flagged = sum(r["flagged"] for r in results)
        return {
            "n": len(results),
            "flagged": flagged,
            "rate": flagged / len(results),
            "distances": {k: [r[k] for r in results] for k in keys},
        }

    return {
        "copies": rate(copies, ("global_distance", "local_distance")),
        "patches": rate(patches, ("local_distance", "global_distance")),
        "unseen": rate(real, ("global_distance", "local_distance")),
        "thresholds": dict(audit.thresholds),
    }
