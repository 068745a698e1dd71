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

import pytest
import torch

from monai_msgan.losses import (
    anchored_coverage,
    diversity_shortfall,
    histogram_distance,
    mode_coverage,
    nearest_samples,
    otsu_threshold,
    r1_penalty,
)


def test_r1_of_a_linear_discriminator_is_its_squared_weight_norm():
    w = torch.randn(1, 2, 4, 4)
    real = torch.randn(3, 2, 4, 4)
    penalty = r1_penalty(lambda x: (x * w).sum(dim=(1, 2, 3)), real)
    assert penalty.item() == pytest.approx(float(w.pow(2).sum()), rel=1e-5)


def test_r1_has_a_graph_for_the_discriminator_weights():
    d = torch.nn.Conv2d(1, 1, 3)
    penalty = r1_penalty(d, torch.randn(2, 1, 8, 8))
    penalty.backward()
    assert d.weight.grad is not None and torch.isfinite(d.weight.grad).all() and d.weight.grad.abs().sum() > 0


def test_diversity_shortfall():
    real = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])  # real images differ by 1 per pixel
    same = torch.full((2, 1, 8, 8), 0.5)
    assert diversity_shortfall(same, same.clone(), real).item() == pytest.approx(1.0)  # collapsed: full shortfall
    half = diversity_shortfall(same, same + 0.5, real)
    assert half.item() == pytest.approx(0.5)
    assert diversity_shortfall(same, same + 2.0, real).item() == 0.0  # more diverse than real: no reward
    assert diversity_shortfall(same[:1], same[:1], real[:1]).item() == 0.0  # one real sample: nothing to match


def test_layout_diversity_ignores_brightness_and_texture():
    """In layout space only where things are counts: a brightness change or fine texture is no diversity, a moved
    structure is; real images that differ by their layout set the target."""
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    left = (xx < 8).float()[None]  # bright left half
    right = (xx >= 8).float()[None]
    real = torch.stack([left, right])
    # the real pair differs everywhere once standardised (+1 against -1): layout distance 2
    assert diversity_shortfall(left[None], left[None], real, "layout").item() == pytest.approx(2.0, rel=1e-4)
    brighter = diversity_shortfall(left[None], left[None] + 0.5, real, "layout")
    assert brighter.item() == pytest.approx(2.0, rel=1e-4)  # brightness: still the full shortfall
    assert diversity_shortfall(left[None], left[None] + 0.5, real).item() < 2.0  # ... which pixels would reward
    checker = ((xx + yy) % 2)[None, None] * 0.2  # texture finer than the 4-pixel pooling
    textured = diversity_shortfall(left[None], left[None] + checker, real, "layout")
    assert textured.item() == pytest.approx(2.0, rel=1e-3)
    assert diversity_shortfall(left[None], right[None], real, "layout").item() == 0.0  # a moved structure: met
    volume, real_volumes = torch.rand(1, 1, 8, 8, 8), torch.rand(2, 1, 8, 8, 8)
    assert diversity_shortfall(volume, volume, real_volumes, "layout") > 0  # 3D: pooled the same way
    with pytest.raises(ValueError, match="space"):
        diversity_shortfall(left[None], right[None], real, "texture")


def test_otsu_threshold_splits_two_intensity_clusters_between_them():
    two_values = torch.tensor([-1.0] * 10 + [1.0] * 30)
    assert otsu_threshold(two_values).item() == pytest.approx(0.0, abs=1e-6)  # the middle of the empty gap
    generator = torch.Generator().manual_seed(0)
    air = torch.randn(1000, generator=generator) * 0.05 - 1.0
    tissue = torch.randn(3000, generator=generator) * 0.05 + 0.5
    threshold = otsu_threshold(torch.cat([air, tissue])).item()
    assert air.max().item() < threshold < tissue.min().item()
    assert threshold == pytest.approx(-0.25, abs=0.1)
    assert otsu_threshold(torch.full((5,), 3.0)).item() == 3.0  # one value: nothing to split


def test_body_diversity_counts_outlines_not_haze_in_the_air():
    """In body space a sample cannot make up its shortfall by greying part of its air; a moved body meets it."""
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    inside = (yy >= 4) & (yy < 12)
    left = torch.where(inside & (xx >= 2) & (xx < 7), 1.0, -1.0)[None, None]  # a body in air (-1)
    right = torch.where(inside & (xx >= 9) & (xx < 14), 1.0, -1.0)[None, None]
    real = torch.cat([left, right])
    hazy = left.clone()
    hazy[..., 8:, 8:] += 0.6  # grey haze in a quarter of the air, darker than any body
    alike = {space: diversity_shortfall(left, left, real, space).item() for space in ("pixels", "layout", "body")}
    hazed = {space: diversity_shortfall(left, hazy, real, space).item() for space in ("pixels", "layout", "body")}
    assert all(value > 0 for value in alike.values())
    assert hazed["body"] > 0.9 * alike["body"]  # the haze makes up under a tenth of the body shortfall ...
    assert hazed["layout"] < 0.7 * alike["layout"] and hazed["pixels"] < 0.8 * alike["pixels"]  # ... unlike these
    assert diversity_shortfall(left, right, real, "body").item() == 0.0  # a moved body: met
    smaller = torch.where(inside & (xx >= 2) & (xx < 5), 1.0, -1.0)[None, None]  # the same body, narrower
    assert diversity_shortfall(left, smaller, real, "body").item() < alike["body"]  # outlines count
    fake = left.clone().requires_grad_(True)
    diversity_shortfall(fake, smaller, real, "body").backward()
    assert fake.grad.abs().sum() > 0 and torch.isfinite(fake.grad).all()
    volumes = torch.rand(2, 1, 8, 8, 8)
    assert diversity_shortfall(volumes[:1], volumes[:1], volumes, "body").item() > 0  # 3D alike


def test_mode_coverage_measures_the_real_images_left_without_a_nearby_sample():
    real = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    both = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    assert mode_coverage(both, real).item() == pytest.approx(0.0)  # every real image has its sample
    collapsed = torch.zeros(4, 1, 8, 8)
    assert mode_coverage(collapsed, real).item() == pytest.approx(0.5)  # the bright image is 1 away from all
    noise = torch.randn(collapsed.shape, generator=torch.Generator().manual_seed(0))  # fixed: 1 in 40 draws dips
    noisy = collapsed + noise  # artefacts do not help: pooled, they average out
    assert mode_coverage(noisy, real).item() > 0.4
    fake = torch.zeros(2, 1, 8, 8, requires_grad=True)
    mode_coverage(fake, real).backward()
    assert fake.grad.abs().sum() > 0


def test_anchored_coverage_pairs_each_sample_with_its_own_real_image():
    real = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    assert anchored_coverage(real.clone(), real).item() == pytest.approx(0.0)
    # swapped samples cover both images (mode_coverage is 0) but each is 1 away from the image it stands for
    swapped = real.flip(0)
    assert mode_coverage(swapped, real).item() == pytest.approx(0.0)
    assert anchored_coverage(swapped, real).item() == pytest.approx(1.0)
    # a collapsed pair is pulled apart: half of it is 1 away from its image
    assert anchored_coverage(torch.zeros(2, 1, 8, 8), real).item() == pytest.approx(0.5)
    # the layout counts, not the texture: a checkerboard of +-1 around the image pools away (3D alike)
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 2.0 - 1.0
    assert anchored_coverage(real + checker, real).item() == pytest.approx(0.0, abs=1e-6)
    volumes = torch.rand(2, 1, 8, 8, 8)
    assert anchored_coverage(volumes + 0.25, volumes).item() == pytest.approx(0.25)
    fake = torch.zeros(2, 1, 8, 8, requires_grad=True)
    target = real.clone().requires_grad_(True)
    anchored_coverage(fake, target).backward()
    assert fake.grad.abs().sum() > 0 and target.grad is None
    with pytest.raises(ValueError, match="one to one"):
        anchored_coverage(torch.zeros(3, 1, 8, 8), real)


def test_nearest_samples_picks_each_real_images_closest_candidate():
    levels = (-1.0, 0.0, 1.0, 0.4)
    candidates = torch.stack([torch.full((1, 8, 8), v) for v in levels])
    real = torch.stack([torch.full((1, 8, 8), v) for v in (0.9, -0.8, 0.3)])
    assert nearest_samples(candidates, real).tolist() == [2, 0, 3]
    # by layout at the pooled scale, as mode_coverage measures it: a bright left half is nearest a bright left half
    left, right = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    left[..., :4], right[..., 4:] = 1.0, 1.0
    assert nearest_samples(torch.cat([right, left]), left).tolist() == [1]
    # 3D, and no gradient is recorded
    volumes = torch.rand(5, 1, 8, 8, 8, requires_grad=True)
    picked = nearest_samples(volumes, volumes[[3, 1]].detach())
    assert picked.tolist() == [3, 1] and not picked.requires_grad


def test_histogram_distance_compares_intensities_wherever_they_lie():
    real = torch.linspace(-1, 1, 2 * 64).reshape(2, 1, 8, 8)
    # the same values in other places: no distance (the layout does not count)
    shuffled = real.flatten(1)[:, torch.randperm(64)].reshape(2, 1, 8, 8)
    assert histogram_distance(shuffled, real).item() == pytest.approx(0.0, abs=1e-7)
    # one real image; a copy 0.1 brighter is 0.1 away (the 1D Wasserstein distance of a shift)
    assert histogram_distance(real[:1] + 0.1, real[:1]).item() == pytest.approx(0.1, rel=1e-5)


def test_histogram_distance_pulls_every_sample_towards_its_nearest_real_histogram():
    real = torch.stack([torch.full((1, 4, 4, 4), -1.0), torch.full((1, 4, 4, 4), 1.0)])
    # one sample near each real image: each is measured against its own nearest (0.2 and 0.5), then averaged
    fake = torch.stack([torch.full((1, 4, 4, 4), 0.8), torch.full((1, 4, 4, 4), -0.5)]).requires_grad_(True)
    loss = histogram_distance(fake, real)
    assert loss.item() == pytest.approx(0.35, rel=1e-5)
    loss.backward()
    # every voxel of both samples moves towards its nearest real image: the first up, the second down
    assert bool((fake.grad[0] < 0).all()) and bool((fake.grad[1] > 0).all())
    # no gradient reaches the real images
    assert not histogram_distance(fake.detach(), real.clone().requires_grad_(True)).requires_grad


def test_histogram_distance_of_images_of_different_sizes_compares_ranks():
    fake = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    real = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    # the same distribution sampled more finely: (nearly) no distance; shifted by 0.25: 0.25
    assert histogram_distance(fake, real).item() == pytest.approx(0.0, abs=0.01)
    assert histogram_distance(fake + 0.25, real).item() == pytest.approx(0.25, abs=0.01)
