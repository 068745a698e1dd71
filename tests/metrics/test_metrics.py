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
import torch.nn.functional as F

from monai_msgan.metrics import (
    FeatureDistances,
    SlicedWassersteinDistance,
    grid_lines,
    paired_fidelity,
    pairwise_diversity,
    seam_score,
    sliced_wasserstein,
)
from monai_msgan.synthesis.streaming import window_slices


def _smooth(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    pool = F.avg_pool2d if len(shape) == 4 else F.avg_pool3d
    return pool(x, 5, 1, 2, count_include_pad=False)


@pytest.mark.parametrize("shape", [(4, 1, 64, 64), (2, 1, 32, 32, 32)])
def test_swd_is_zero_for_identical_sets_and_grows_with_difference(shape):
    x = _smooth(shape)
    swd = SlicedWassersteinDistance(levels=3, patches_per_image=64, num_projections=128)
    assert swd(x, x) == [0.0, 0.0, 0.0]
    noisy = swd(x, x + 0.05 * torch.randn_like(x))
    noisier = swd(x, x + 0.2 * torch.randn_like(x))
    assert noisy[0] > 0.1 and noisier[0] > noisy[0]  # fine texture differs at the finest level
    assert swd(x, x + 0.1)[:2] == pytest.approx([0, 0], abs=1e-4)  # a constant shift only moves the low-pass level
    with pytest.raises(ValueError, match="differ in shape"):
        swd(x, x[..., :16])


def test_sliced_wasserstein_counts_every_point_of_sets_of_different_sizes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    # in 1D every direction is +-1: the distance of {0, 1} and {0, 1, 1, 1} is |F_a - F_b| integrated, 1/4
    assert sliced_wasserstein(a, b, 8, g) == pytest.approx(0.25)
    assert sliced_wasserstein(b, a, 8, g) == pytest.approx(0.25)
    assert sliced_wasserstein(a, torch.tensor([[0.0], [0.0], [1.0], [1.0]]), 8, g) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="points in both sets"):
        sliced_wasserstein(a, a[:0], 8, g)


def test_swd_of_one_real_image_sees_every_generated_one():
    x = _smooth((3, 1, 64, 64))
    swd = SlicedWassersteinDistance(levels=2, patches_per_image=32, num_projections=64)
    copies = swd(x[:1], x[[0, 0]])  # only sampling noise: the second copy's neighbourhoods are drawn elsewhere
    # the first sample is a copy of the real image, the second is not: the distance must see the second
    other = swd(x[:1], torch.stack([x[0], x[1] + 0.3 * torch.randn_like(x[1])]))
    assert all(o > 2 * c for o, c in zip(other, copies))


def test_seam_score_near_one_without_seams_and_high_with_planted_ones():
    img = _smooth((1, 1, 256, 256))[0]
    assert 0.85 < seam_score(img, 64) < 1.15
    planted = img.clone()
    for w in window_slices((256, 256), (64, 64), 0.0):  # a checkerboard of tile offsets: a step at every line
        if (w[0].start // 64 + w[1].start // 64) % 2:
            planted[(slice(None), *w)] += 0.1
    assert seam_score(planted, 64, overlap=0.0) > 1.5
    lines = grid_lines((256, 256), (64, 64), 0.0)
    assert lines == [{64, 128, 192}, {64, 128, 192}]


def test_seam_score_in_3d():
    vol = _smooth((1, 1, 64, 64, 64))[0]
    assert 0.8 < seam_score(vol, 32) < 1.2


def test_paired_fidelity_known_answers():
    x = _smooth((3, 1, 64, 64))
    same = paired_fidelity(x, x)
    assert same["ssim"] == pytest.approx(1.0) and same["mae"] == 0 and same["psnr"] == float("inf")
    shifted = paired_fidelity((x + 0.1).clamp(0, 1), x)
    assert shifted["mae"] == pytest.approx(0.1, abs=0.02) and 15 < shifted["psnr"] < 25 and shifted["ssim"] < 1


def test_diversity_uses_ms_ssim_when_large_enough():
    small = _smooth((3, 1, 64, 64))
    same = {"metric": "ssim", "mean": pytest.approx(1.0), "median": pytest.approx(1.0), "pairs": 3}
    assert pairwise_diversity(torch.stack([small[0]] * 3)) == same
    # a collapsed set with one unlike sample: the mean says diverse, the median says collapsed
    outlier = pairwise_diversity(torch.stack([small[0]] * 4 + [1 - small[1]]))
    assert outlier["pairs"] == 10 and outlier["median"] == pytest.approx(1.0) and outlier["mean"] < 0.7
    assert pairwise_diversity(small)["mean"] < 0.9
    big = pairwise_diversity(_smooth((2, 1, 176, 176)))
    assert big["metric"] == "ms-ssim" and big["pairs"] == 1


def test_feature_distances_with_a_torchscript_extractor(tmp_path):
    net = torch.jit.script(
        torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    )
    net.save(str(tmp_path / "extractor.pt"))
    fd = FeatureDistances(tmp_path / "extractor.pt", batch_size=5)
    a = torch.rand(16, 1, 32, 32)
    same = fd(a, a)
    assert abs(same["fid"]) < 1e-6 and abs(same["mmd"]) < 1e-4
    assert fd(a, a * 0.5)["fid"] > 1e-3
    with pytest.raises(FileNotFoundError):
        FeatureDistances(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a TorchScript model"):
        FeatureDistances(tmp_path / "bad.pt")
