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
"""Label-conditioned generation writes each sample's label map beside it, on the same grid."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, LoadImaged

from monai_msgan.networks import BaseGenerator, MultiScaleGenerator, PatchGenerator
from monai_msgan.synthesis import MultiScaleSynthesizer, SampleGeneration
from monai_msgan.transforms import LabelEncoded

SIZE = (64, 96)
AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])


def _model(num_classes: int) -> MultiScaleGenerator:
    torch.manual_seed(0)
    return MultiScaleGenerator(
        BaseGenerator(2, condition_channels=num_classes, noise_channels=2, features=(4, 4, 8, 8, 16, 4)),
        lambda: PatchGenerator(2, condition_channels=num_classes, channels=4, num_res_blocks=1),
        num_scales=2,
    )


def _label_file(path, labels: np.ndarray):
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag([2.0, 2.0, 1.0, 1.0])), str(path))
    return {"label": str(path)}


@pytest.mark.parametrize("output_buffer", ["memory", "disk"])
def test_label_maps_are_written_beside_their_samples(tmp_path, output_buffer):
    rng = np.random.default_rng(0)
    first = np.zeros(SIZE, dtype=np.uint8)
    first[10:40, 20:70] = 2
    first[30:50, 50:90] = 1
    files = [_label_file(tmp_path / "a.nii.gz", first), _label_file(tmp_path / "b.nii.gz", rng.integers(0, 3, SIZE))]
    preprocessing = Compose([LoadImaged("label", ensure_channel_first=True, image_only=True),
                             LabelEncoded("label", "condition", num_classes=3)])  # fmt: skip
    synth = MultiScaleSynthesizer(_model(3), 32, device="cpu", condition_mode="nearest")
    out = tmp_path / "out"
    gen = SampleGeneration(synth, SIZE, out, AFFINE, num_samples=2, seed=4, prefix="x", output_buffer=output_buffer,
                           condition_files=files, condition_preprocessing=preprocessing, label_key="label")  # fmt: skip
    paths = gen.run()
    assert [p.name for p in paths] == ["x_000.nii.gz", "x_001.nii.gz", "x_002.nii.gz", "x_003.nii.gz"]
    samples = json.loads((out / "xs.json").read_text())["samples"]
    assert [(s["image"], s["label"], s["condition_index"]) for s in samples] == [
        (f"x_00{i}.nii.gz", f"x_00{i}_label.nii.gz", i // 2) for i in range(4)
    ]
    images = [nib.load(p) for p in paths]
    labels = [nib.load(out / s["label"]) for s in samples]
    for img, lab in zip(images, labels):
        assert img.shape == lab.shape == SIZE and np.allclose(img.affine, AFFINE) and np.allclose(lab.affine, AFFINE)
        assert lab.get_data_dtype() == np.uint8
    assert np.array_equal(labels[0].get_fdata(), first) and np.array_equal(labels[1].get_fdata(), first)
    assert not np.array_equal(labels[2].get_fdata(), first)
    # the label map drives the image: same seed, other labels, another image
    assert not np.allclose(images[0].get_fdata(), images[2].get_fdata())
    # label files count as outputs: never replaced unless asked
    (out / "x_000.nii.gz").unlink()
    (out / "x_000.png").unlink()
    with pytest.raises(FileExistsError, match="x_000_label.nii.gz"):
        SampleGeneration(synth, SIZE, out, AFFINE, num_samples=2, seed=4, prefix="x", condition_files=files,
                         condition_preprocessing=preprocessing, label_key="label").run()  # fmt: skip


def test_label_key_needs_label_maps(tmp_path):
    synth = MultiScaleSynthesizer(_model(3), 32, device="cpu", condition_mode="nearest")
    with pytest.raises(ValueError, match="label_key needs condition_files"):
        SampleGeneration(synth, SIZE, tmp_path, AFFINE, label_key="label")
    with pytest.raises(ValueError, match="condition_mode must be one of"):
        MultiScaleSynthesizer(_model(3), 32, device="cpu", condition_mode="bilinear")
