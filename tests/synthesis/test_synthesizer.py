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

from monai_msgan.networks import BaseGenerator, MultiScaleGenerator, PatchGenerator
from monai_msgan.synthesis import MultiScaleSynthesizer


def _trained_like(spatial_dims=2, condition_channels=0, num_scales=3, seed=0):
    """Small generators with random (non-zero) weights, so every scale changes the image."""
    torch.manual_seed(seed)
    model = MultiScaleGenerator(
        BaseGenerator(
            spatial_dims, features=(4, 4, 8, 8, 8, 4), condition_channels=condition_channels, noise_downsample=2
        ),
        lambda: PatchGenerator(spatial_dims, channels=4, num_res_blocks=1, condition_channels=condition_channels),
        num_scales=num_scales,
    )
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return model


@pytest.mark.parametrize("spatial_dims,size,patch", [(2, (128, 192), 32), (3, (64, 64, 128), 32)])
def test_same_seed_same_image_for_any_sw_batch_size(spatial_dims, size, patch):
    model = _trained_like(spatial_dims)
    outs = [MultiScaleSynthesizer(model, patch, sw_batch_size=b, device="cpu")(size, seed=11) for b in (1, 3, 8)]
    assert outs[0].shape == (1, *size)
    assert max(size) > patch  # many windows per scale
    for other in outs[1:]:
        assert torch.equal(outs[0], other)
    different = MultiScaleSynthesizer(model, patch, device="cpu")(size, seed=12)
    assert not torch.allclose(outs[0], different)


def test_larger_than_training_size_and_any_valid_shape():
    model = _trained_like()
    synth = MultiScaleSynthesizer(model, 16, overlap=0.5, device="cpu")
    for size in [(128, 128), (256, 128), (192, 320)]:
        out = synth(size, seed=0)
        assert out.shape == (1, *size) and torch.isfinite(out).all()


def test_windows_blend_without_seams_for_a_smooth_generator():
    """With identity patch generators the result is exactly the upsampled base: blending adds nothing."""
    model = _trained_like()
    for p in model.patches.parameters():
        torch.nn.init.zeros_(p)
    synth = MultiScaleSynthesizer(model, 16, sw_batch_size=4, device="cpu")
    out = synth((128, 128), seed=3)
    from monai_msgan.synthesis.noise import positional_noise
    from monai_msgan.transforms import upsample

    with torch.no_grad():
        base = model.base(None, None, positional_noise(3, 0, 1, (32, 32))[None])[0]
    assert torch.allclose(out, upsample(upsample(base)), atol=1e-5)


def test_condition_is_used_at_every_scale():
    model = _trained_like(condition_channels=1)
    synth = MultiScaleSynthesizer(model, 16, device="cpu")
    cond = torch.zeros(1, 128, 128)
    cond[:, 40:80, 40:80] = 1
    a = synth((128, 128), seed=0, condition=cond)
    b = synth((128, 128), seed=0, condition=torch.zeros(1, 128, 128))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="condition has spatial size"):
        synth((128, 128), seed=0, condition=torch.zeros(1, 32, 32))


@pytest.mark.parametrize("size,match", [((96, 64), "divisible by 64"), ((64, 64), "smaller than the patch")])
def test_invalid_sizes(size, match):
    synth = MultiScaleSynthesizer(_trained_like(), 48, device="cpu")
    with pytest.raises(ValueError, match=match):
        synth(size)


@pytest.mark.parametrize("spatial_dims,size", [(2, (256, 384))])
def test_base_larger_than_trained_is_made_in_windows(spatial_dims, size):
    model = _trained_like(spatial_dims)
    for p in model.parameters():
        p.data.mul_(0.3)
    windowed = [
        MultiScaleSynthesizer(model, 32, sw_batch_size=b, device="cpu", base_window=32, extend_field_of_view=True)(
            size, seed=3
        )
        for b in (1, 5)
    ]
    assert torch.equal(windowed[0], windowed[1])  # still independent of sw_batch_size
    whole = MultiScaleSynthesizer(model, 32, device="cpu")(size, seed=3)
    assert not torch.allclose(windowed[0], whole)  # the base was really assembled from windows
    # at the trained size there is a single window: identical to one pass
    small = tuple(32 * 4 for _ in size)
    a = MultiScaleSynthesizer(model, 32, device="cpu", base_window=32)(small, seed=1)
    b = MultiScaleSynthesizer(model, 32, device="cpu")(small, seed=1)
    assert torch.equal(a, b)


def test_output_size_other_than_trained_is_refused_unless_extending_the_field_of_view():
    model = _trained_like(2)
    synth = MultiScaleSynthesizer(model, 32, device="cpu", base_window=32)
    with pytest.raises(ValueError, match=r"differs from the trained size \[128, 128\].*extend_field_of_view"):
        synth((256, 128), seed=0)
    with pytest.raises(ValueError, match=r"differs from the trained size \[128, 128\]"):
        synth((64, 128), seed=0)
    extended = MultiScaleSynthesizer(model, 32, device="cpu", base_window=32, extend_field_of_view=True)
    assert extended((64, 128), seed=0).shape == (1, 64, 128)
    assert synth((128, 128), seed=0).shape == (1, 128, 128)


def test_stream_matches_in_memory_result():
    model = _trained_like(3)
    for p in model.parameters():
        p.data.mul_(0.3)
    synth = MultiScaleSynthesizer(model, 32, sw_batch_size=2, device="cpu")
    slabs, starts = [], []
    synth.stream((64, 64, 128), lambda s, z: (slabs.append(s), starts.append(int(z))), seed=3)
    assert starts[0] == 0 and all(b > a for a, b in zip(starts, starts[1:]))
    streamed = torch.cat(slabs, dim=-1)
    assert torch.allclose(streamed, synth((64, 64, 128), seed=3), atol=1e-5)


@pytest.mark.parametrize("spatial_dims,size,mode", [(2, (128, 128), "bicubic"), (3, (64, 64, 128), "trilinear")])
def test_generated_scales_interpolates_the_rest(spatial_dims, size, mode):
    """Low-resolution GAN + interpolation: only the base runs, the output is its interpolation to full size."""
    model = _trained_like(spatial_dims)
    low = MultiScaleSynthesizer(model, 32, device="cpu", generated_scales=1)
    out = low(size, seed=3)
    base_size = tuple(s // 4 for s in size)
    base = MultiScaleSynthesizer(model, 32, device="cpu")._base(3, base_size, None)
    expected = torch.nn.functional.interpolate(base[None], size=size, mode=mode, align_corners=False)[0].clamp(-1, 1)
    assert out.shape == (1, *size) and torch.allclose(out, expected)
    slabs = []
    low.stream(size, lambda slab, start: slabs.append((start, slab)), seed=3)
    assert len(slabs) == 1 and torch.equal(slabs[0][1], out)
    with pytest.raises(ValueError, match="generated_scales"):
        MultiScaleSynthesizer(model, 32, device="cpu", generated_scales=4)


def test_single_scale_patch_model_is_synthesised_window_by_window():
    """Baseline (a): a one-scale model whose 'base' is a patch generator without coarse input."""
    torch.manual_seed(0)
    net = PatchGenerator(2, condition_channels=1, channels=4, num_res_blocks=1, coarse_input=False)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    model = MultiScaleGenerator(net, [], num_scales=1)
    cond = (torch.rand(1, 96, 128) > 0.8).float()
    outs = [
        MultiScaleSynthesizer(model, 32, base_window=32, extend_field_of_view=True, sw_batch_size=b, device="cpu")(
            (96, 128), 5, cond
        )
        for b in (1, 4)
    ]
    assert outs[0].shape == (1, 96, 128) and torch.equal(outs[0], outs[1])
    streamed = torch.empty(1, 96, 128)

    def sink(slab, start):
        streamed[..., start : start + slab.shape[-1]] = slab

    MultiScaleSynthesizer(model, 32, base_window=32, extend_field_of_view=True, device="cpu").stream(
        (96, 128), sink, 5, cond
    )
    assert torch.allclose(streamed, outs[0], atol=1e-5)
