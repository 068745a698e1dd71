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
"""The assembly engine: buffers, regions, batching."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_msgan.synthesis import MultiScaleSynthesizer, SampleGeneration
from monai_msgan.synthesis.assembly import redundancy, window_grid
from tests.synthesis.test_synthesizer import _trained_like


def _model(spatial_dims, **kw):
    """Three scales in 2D, two in 3D (small enough for CI)."""
    model = _trained_like(spatial_dims, num_scales=5 - spatial_dims, **kw)
    for p in model.parameters():
        p.data.mul_(0.3)
    return model


def _crop(image, start, size):
    return image[(slice(None), *[slice(a, a + n) for a, n in zip(start, size)])]


# spatial_dims, size, patch, roi_start, roi_size
TEST_CASE_2D = [2, (128, 128), 32, (37, 70), (40, 50)]
TEST_CASE_3D = [3, (32, 32, 64), 16, (3, 10, 37), (20, 15, 17)]


@pytest.mark.parametrize("spatial_dims,size,patch,start,roi", [TEST_CASE_2D, TEST_CASE_3D])
def test_every_buffer_and_sink_gives_the_same_image(spatial_dims, size, patch, start, roi):
    model = _model(spatial_dims)
    ref = MultiScaleSynthesizer(model, patch, sw_batch_size=3, device="cpu", buffer="host")(size, seed=5)
    for kw in ({"buffer": "device"}, {"buffer": "device", "device_memory_budget": 0}):
        out = MultiScaleSynthesizer(model, patch, sw_batch_size=3, device="cpu", **kw)(size, seed=5)
        assert torch.equal(out, ref)
    streamed = torch.full_like(ref, float("nan"))

    def sink(slab, z):
        streamed[..., z : z + slab.shape[-1]] = slab

    MultiScaleSynthesizer(model, patch, sw_batch_size=3, device="cpu").stream(size, sink, seed=5)
    assert torch.equal(streamed, ref)


@pytest.mark.parametrize("batch_invariant", [True, False])
@pytest.mark.parametrize("spatial_dims,size,patch,start,roi", [TEST_CASE_2D, TEST_CASE_3D])
def test_region_equals_the_crop_of_the_whole_image(spatial_dims, size, patch, start, roi, batch_invariant):
    model = _model(spatial_dims)
    synth = MultiScaleSynthesizer(model, patch, sw_batch_size=3, device="cpu", batch_invariant=batch_invariant)
    whole = synth(size, seed=7)
    calls = []
    hook = model.patches[-1].register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    part = synth(size, seed=7, roi_start=start, roi_size=roi)
    hook.remove()
    assert part.shape == (1, *roi)
    assert torch.equal(part, _crop(whole, start, roi))  # bit for bit
    # only the windows that touch the region were computed at the finest scale
    needed = len(window_grid(size, synth.patch_size, synth.overlap, [slice(a, a + n) for a, n in zip(start, roi)]))
    assert needed < len(window_grid(size, synth.patch_size, synth.overlap))
    assert sum(calls) == (needed if batch_invariant else -(-needed // 3) * 3)  # batched: padded to full batches
    streamed = []
    synth.stream(size, lambda slab, z: streamed.append((z, slab)), seed=7, roi_start=start, roi_size=roi)
    assert streamed[0][0] == 0 and torch.equal(torch.cat([s for _, s in streamed], -1), part)


def test_region_with_condition_and_windowed_base():
    model = _model(2, condition_channels=1)
    cond = torch.zeros(1, 256, 384)
    cond[:, 60:200, 100:300] = 1
    synth = MultiScaleSynthesizer(model, 32, sw_batch_size=2, device="cpu", base_window=32, extend_field_of_view=True)
    whole = synth((256, 384), seed=2, condition=cond)
    part = synth((256, 384), seed=2, condition=cond, roi_start=(200, 17), roi_size=(56, 90))
    assert torch.equal(part, _crop(whole, (200, 17), (56, 90)))


def test_batch_sizes_agree_to_float_rounding():
    """Batched forward passes (batch_invariant=False): sw_batch_size 1 and 8 agree to 1e-5 (documented)."""
    model = _model(3)
    outs = [
        MultiScaleSynthesizer(model, 16, sw_batch_size=b, device="cpu", batch_invariant=False)((32, 32, 64), seed=1)
        for b in (1, 8)
    ]
    assert (outs[0] - outs[1]).abs().max() <= 1e-5
    exact = MultiScaleSynthesizer(model, 16, sw_batch_size=8, device="cpu")((32, 32, 64), seed=1)
    assert (exact - outs[0]).abs().max() <= 1e-5


def test_invalid_regions_and_options():
    synth = MultiScaleSynthesizer(_model(2), 32, device="cpu")
    with pytest.raises(ValueError, match="does not lie inside"):
        synth((128, 128), roi_start=(100, 0), roi_size=(40, 10))
    with pytest.raises(ValueError, match="give both roi_start and roi_size"):
        synth((128, 128), roi_start=(0, 0))
    with pytest.raises(ValueError, match="buffer must be one of"):
        MultiScaleSynthesizer(_model(2), 32, device="cpu", buffer="gpu")
    with pytest.raises(ValueError, match="overlap must be in"):
        MultiScaleSynthesizer(_model(2), 32, device="cpu", overlap=1.0)


def test_default_overlap_keeps_redundant_compute_low():
    """The default overlap computes the finest scale of the paper-scale sizes at most 1.5 times."""
    overlap = MultiScaleSynthesizer(_model(2), 32, device="cpu").overlap
    assert redundancy((512,) * 3, (64,) * 3, overlap) <= 1.5
    assert redundancy((2048,) * 2, (256,) * 2, overlap) <= 1.5
    assert redundancy((512,) * 3, (64,) * 3, 0.25) > 2.5


def test_sample_generation_writes_a_region_where_it_lies_in_the_whole(tmp_path):
    synth = MultiScaleSynthesizer(_model(3), 16, sw_batch_size=2, device="cpu")
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [-40.0, 12.5, 7.0]
    size, start, roi = (32, 32, 64), (8, 0, 40), (20, 32, 20)
    files = {}
    for name, kw in (("whole", {}), ("region", {"roi_start": start, "roi_size": roi, "output_buffer": "disk"})):
        gen = SampleGeneration(synth, size, tmp_path / name, affine, seed=3, output_range=(-1, 1), **kw)
        files[name] = nib.load(gen.run()[0])
    region, whole = files["region"], files["whole"]
    assert region.shape == roi
    assert np.array_equal(region.get_fdata(), whole.get_fdata()[8:28, :, 40:60])
    # the region's first voxel is where that voxel lies in the whole image
    assert np.allclose(region.affine[:3, 3], whole.affine[:3, :3] @ np.array(start) + whole.affine[:3, 3])
    record = json.loads((tmp_path / "region" / "samples.json").read_text())
    assert record["roi_start"] == list(start) and record["roi_size"] == list(roi)
    with pytest.raises(ValueError, match="does not lie inside"):
        SampleGeneration(synth, size, tmp_path / "bad", affine, roi_start=(60, 0, 0), roi_size=(8, 8, 8))
