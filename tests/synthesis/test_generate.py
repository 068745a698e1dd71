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

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from monai_msgan.synthesis import MultiScaleSynthesizer, SampleGeneration
from monai_msgan.synthesis.generate import choose_output_buffer
from tests.synthesis.test_synthesizer import _trained_like


def _bounded(spatial_dims):
    """A small model whose output stays in the model range, as a trained one's does."""
    model = _trained_like(spatial_dims)
    for p in model.patches.parameters():
        p.data.mul_(0.05)
    return model


@pytest.mark.parametrize(
    "spatial_dims,size,affine,out_range,dtype",
    [
        (3, (64, 128, 64), np.diag([1.5, 1.5, 2.0, 1.0]), (-1024, 3071), "int16"),
        (2, (128, 192), np.diag([0.2, 0.2, 1.0, 1.0]), (0.0, 1.0), "float32"),
    ],
)
def test_disk_and_memory_buffers_give_the_same_files(tmp_path, spatial_dims, size, affine, out_range, dtype):
    affine = affine.copy()
    affine[:3, 3] = [-40.0, 12.5, 7.0]
    synth = MultiScaleSynthesizer(_bounded(spatial_dims), 32, sw_batch_size=2, device="cpu")
    runs = {}
    for mode in ("memory", "disk"):
        gen = SampleGeneration(
            synth,
            size,
            tmp_path / mode,
            affine,
            num_samples=1,
            seed=9,
            output_range=out_range,
            output_dtype=dtype,
            output_buffer=mode,
        )
        (path,) = gen.run()
        record = json.loads((tmp_path / mode / "samples.json").read_text())
        assert record["output_buffer"] == mode
        runs[mode] = nib.load(path)
    mem, disk = runs["memory"], runs["disk"]
    assert disk.shape == mem.shape == size and disk.get_data_dtype() == np.dtype(dtype)
    assert np.allclose(disk.affine, affine) and np.allclose(mem.affine, affine)
    a, b = mem.get_fdata(), disk.get_fdata()
    assert a.std() > 0
    assert np.array_equal(a, b)  # one assembly engine: only where the finished slabs go differs
    assert a.min() >= out_range[0] and a.max() <= out_range[1]
    # SimpleITK reads the streamed file with the same geometry as nibabel
    img = sitk.ReadImage(str(tmp_path / "disk" / "sample_000.nii.gz"))
    assert np.allclose(img.GetSpacing()[:spatial_dims], np.diag(affine)[:spatial_dims])
    assert np.allclose(np.asarray(img.GetOrigin())[:2], [40.0, -12.5])  # LPS
    pngs = [np.asarray(Image.open(tmp_path / m / "sample_000.png"), dtype=int) for m in ("memory", "disk")]
    assert np.array_equal(pngs[0], pngs[1])
    if spatial_dims == 3:  # axial, coronal and sagittal side by side
        assert pngs[0].shape == (128, 64 + 64 + 128)


def test_auto_buffer_follows_output_size():
    assert choose_output_buffer("auto", (64, 64, 64), memory_budget=2**30) == "memory"
    assert choose_output_buffer("auto", (1024, 1024, 1024), memory_budget=2**30) == "disk"
    assert choose_output_buffer("memory", (1024, 1024, 1024), memory_budget=1) == "memory"
    with pytest.raises(ValueError, match="output_buffer"):
        choose_output_buffer("ram", (8, 8))


def test_existing_outputs_are_checked_before_generating(tmp_path):
    synth = MultiScaleSynthesizer(_bounded(2), 32, device="cpu")
    (tmp_path / "sample_001.png").write_bytes(b"keep")
    gen = SampleGeneration(synth, (128, 128), tmp_path, np.eye(4), num_samples=2)
    with pytest.raises(FileExistsError, match="sample_001.png already exists"):
        gen.run()
    assert not (tmp_path / "sample_000.nii.gz").exists()  # nothing was generated
    assert (tmp_path / "sample_001.png").read_bytes() == b"keep"


def test_streamed_writer_removes_partial_file_on_error(tmp_path):
    synth = MultiScaleSynthesizer(_bounded(3), 32, device="cpu")

    def broken(*args, **kwargs):
        raise RuntimeError("device lost")

    synth.generator.scale(2).forward = broken
    gen = SampleGeneration(synth, (64, 64, 128), tmp_path, np.eye(4), output_buffer="disk")
    with pytest.raises(RuntimeError, match="device lost"):
        gen.run()
    assert list(tmp_path.iterdir()) == []


def test_conditional_samples_follow_their_conditions(tmp_path):
    from monai.transforms import Lambda

    model = _trained_like(2, condition_channels=1)
    for p in model.patches.parameters():
        p.data.mul_(0.05)
    synth = MultiScaleSynthesizer(model, 32, device="cpu")
    conds = [{"condition": (np.random.default_rng(i).random((1, 128, 128)) > 0.7).astype("float32")} for i in range(2)]
    gen = SampleGeneration(
        synth, (128, 128), tmp_path, np.eye(4), num_samples=2, condition_files=conds,
        condition_preprocessing=Lambda(lambda d: d),
    )  # fmt: skip
    paths = gen.run()
    assert [p.name for p in paths] == [f"sample_{i:03d}.nii.gz" for i in range(4)]
    record = json.loads((tmp_path / "samples.json").read_text())
    assert [(s["condition_index"], s["seed"]) for s in record["samples"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    images = [np.asarray(nib.load(p).dataobj) for p in paths]
    direct = (synth((128, 128), seed=1, condition=torch.as_tensor(conds[1]["condition"]))[0].numpy() + 1) / 2
    assert np.allclose(images[3], direct.clip(0, 1), atol=1e-6)
    assert not np.allclose(images[1], images[3])  # same seed, other condition
    bad = SampleGeneration(
        synth, (128, 128), tmp_path / "bad", np.eye(4), condition_files=[{"condition": np.zeros((1, 64, 64))}],
        condition_preprocessing=Lambda(lambda d: d),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"has size \[64, 64\], but output_size is \[128, 128\]"):
        bad.run()
