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

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_msgan.privacy import PrivacyAudit
from monai_msgan.privacy.features import PatchIndex, canonical_grid, grid_variants, nearest, unit_rows
from monai_msgan.privacy.planted import disguised_copy, pasted_patch, planted_copy_rates

# (fixture, calibration, audit kwargs, planted-copy kwargs): 2D shifts up to 4 px of ~120, 3D up to 1 voxel of 32
# (3% of a side). Leave-one-out in 2D is left out: two lung tiles of the one radiograph are so alike that the
# closest training pair sets the global threshold below the farthest disguised copies (docs/privacy.md).
TEST_CASE_PLANTED = [
    ("radiograph_tiles", "held_out", {}, {"copies_per_image": 1, "patch_fraction": 0.4, "copy_shift": 4}),
    ("ct_cubes", "held_out", {"spatial_dims": 3}, {"copies_per_image": 1, "patch_fraction": 0.6, "copy_shift": 1}),
    ("ct_cubes", "leave_one_out", {"spatial_dims": 3}, {"copies_per_image": 1, "patch_fraction": 0.6, "copy_shift": 1}),
]


@pytest.mark.parametrize("fixture, calibration, audit_kwargs, plant_kwargs", TEST_CASE_PLANTED)
def test_planted_copies_flagged_unseen_not(fixture, calibration, audit_kwargs, plant_kwargs, request):
    data = request.getfixturevalue(fixture)
    held_out = data["held_out"] if calibration == "held_out" else None
    audit = PrivacyAudit(data["training"], held_out=held_out, **audit_kwargs)
    assert audit.calibration["method"] == calibration
    planted = data["training"][:5] if audit.spatial_dims == 3 else data["training"]  # 3D: five, to keep CI quick
    rates = planted_copy_rates(audit, planted, data["unseen"], seed=1, **plant_kwargs)
    assert rates["copies"]["rate"] == 1.0, rates["copies"]
    assert rates["patches"]["rate"] == 1.0, rates["patches"]
    assert rates["unseen"]["rate"] == 0.0, rates["unseen"]
    if calibration == "leave_one_out":  # then the held-out images are unseen too
        assert not any(audit.check(x)["flagged"] for x in data["held_out"])


def test_check_reports_the_copied_image(radiograph_tiles):
    train = radiograph_tiles["training"]
    audit = PrivacyAudit(
        train, names=[f"tile_{i}.nii.gz" for i in range(len(train))], held_out=radiograph_tiles["held_out"]
    )
    rng = np.random.default_rng(0)
    result = audit.check(disguised_copy(train[3], rng))
    assert result["flagged"] and result["flagged_global"]
    assert result["nearest_training"] == "tile_3.nii.gz"
    assert result["global_match"]["flip"]  # disguised copies are flipped; the audit found the flip back
    patch = audit.check(pasted_patch(radiograph_tiles["unseen"][0], train[5], rng, 0.4))
    assert patch["flagged_local"] and not patch["flagged_global"]
    assert patch["nearest_training_local"] == "tile_5.nii.gz"
    summary = audit.summary()
    assert summary["num_checked"] == 2 and summary["num_flagged"] == 2
    assert summary["thresholds"] == audit.thresholds and set(audit.thresholds) == {"global", "local"}


def test_layouts_and_intensity_ranges_agree(radiograph_tiles):
    train = radiograph_tiles["training"]
    audit = PrivacyAudit(train[:4], held_out=radiograph_tiles["held_out"][:1])
    x = radiograph_tiles["unseen"][0]
    ref = audit.check(x)
    for variant in (x[None], torch.as_tensor(x)[None], 4095.0 * x - 1000.0, np.repeat(x[None], 3, 0)):
        out = audit.check(variant)
        assert out["global_distance"] == pytest.approx(ref["global_distance"], abs=1e-4)
        assert out["local_distance"] == pytest.approx(ref["local_distance"], abs=1e-4)


def test_bad_inputs():
    rng = np.random.default_rng(0)
    train = [rng.random((40, 40)).astype(np.float32) for _ in range(2)]
    audit = PrivacyAudit(train)
    with pytest.raises(ValueError, match="not 2D"):
        audit.check(np.zeros((2, 3, 40, 40)))
    with pytest.raises(ValueError, match="sample_7.*NaN"):
        audit.check(np.full((40, 40), np.nan), name="sample_7")
    flat = audit.check(np.ones((40, 40)))
    assert flat["global_distance"] is None and not flat["flagged"]
    with pytest.raises(ValueError, match="at least one training image"):
        PrivacyAudit([])
    with pytest.raises(ValueError, match="no training image has any contrast"):
        PrivacyAudit([np.zeros((8, 8))])
    partly = PrivacyAudit([train[0], np.zeros((40, 40)), train[1]], thresholds={"global": 0.1, "local": 0.1})
    assert partly.skipped == ["training_1"] and partly.check(train[1])["nearest_training"] == "training_2"
    with pytest.raises(ValueError, match="inconsistent audit settings"):
        PrivacyAudit(train, patch_size=30, pool=4)
    single = PrivacyAudit(train[:1])
    assert single.calibration["method"] == "default"
    given = PrivacyAudit(train, thresholds={"global": 0.1, "local": 0.2})
    assert given.thresholds == {"global": 0.1, "local": 0.2}


def test_grid_variants_and_nearest():
    grid = torch.rand(1, 1, 10, 10)
    v = grid_variants(grid, 2, flips=True)
    assert v.shape == (25 * 4, 36)
    torch.testing.assert_close(v[0], unit_rows(grid[0, 0, 2:8, 2:8].reshape(1, -1))[0])
    assert torch.allclose(v.norm(dim=1), torch.ones(len(v)), atol=1e-5)
    grid3, box = canonical_grid(torch.rand(6, 12, 3), 24)
    assert grid3.shape == (1, 1, 24, 24, 24) and box == [(6, 18), (0, 24), (9, 15)]
    q, idx = unit_rows(torch.randn(7, 16)), unit_rows(torch.randn(50, 16))
    d, a = nearest(q, idx.half(), chunk_elements=20)  # several chunks
    full = 1 - q @ idx.half().float().T
    torch.testing.assert_close(d, full.min(1).values)
    assert torch.equal(a, full.argmin(1))
    exclude = torch.zeros(50, dtype=torch.bool)
    exclude[a[0]] = True
    assert nearest(q[:1], idx, exclude=exclude)[1][0] != a[0]


def test_patch_index_inverted_file_finds_copies():
    g = torch.Generator().manual_seed(0)
    centres = unit_rows(torch.randn(40, 32, generator=g))  # clustered descriptors, as patches of real images are
    rows = unit_rows(centres[torch.randint(0, 40, (6000,), generator=g)] + 0.3 * torch.randn(6000, 32, generator=g))
    owners = torch.arange(6000) // 100
    index = PatchIndex(rows.half(), owners, exact_limit=1000)
    assert index.centroids is not None
    picked = torch.randint(0, 6000, (200,), generator=g)
    copies = unit_rows(rows[picked] + 0.01 * torch.randn(200, 32, generator=g))
    d, a = index.search(copies)
    assert torch.equal(a, picked) and bool((d < 0.01).all())
    unrelated = unit_rows(torch.randn(100, 32, generator=g))
    exact = nearest(unrelated, rows.half())[0]
    assert bool((index.search(unrelated)[0] >= exact - 1e-6).all())  # approximate: never closer than the truth
    d_ex, a_ex = index.search(copies[:3], exclude_owner=int(owners[picked[0]]))
    assert owners[a_ex[0]] != owners[picked[0]] and d_ex[0] > d[0]
