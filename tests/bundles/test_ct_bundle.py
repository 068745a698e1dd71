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
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from monai_msgan.data import demo_ct_path
from tests.bundles.run import ok, run_bundle
from tests.conftest import REPO_ROOT
from tests.data.test_ct import write_series

BUNDLE = REPO_ROOT / "bundles" / "ct_msgan_3d"
TINY = [
    "--image_size", "[64,64,64]",
    "--spacing", "[2.0,2.0,2.0]",
    "--num_scales", "2",
    "--patch_size", "[32,32,32]",
]  # fmt: skip
LARGER = ["--output_size", "[64,64,96]", "--extend_field_of_view", "true"]  # beyond the trained 64^3
TRAIN = ["--num_iterations", "[2,2]", "--batch_size", "1", "--patches_per_image", "2"]


def _bundle(run_id: str, configs: list[str], *args: str) -> subprocess.CompletedProcess:
    return run_bundle(BUNDLE, run_id, configs, *args)


@pytest.mark.slow
def test_dicom_and_nifti_to_generated_ct(tmp_path):
    ct = sitk.ReadImage(str(demo_ct_path()))
    write_series(ct[176:336, 176:336, 30:70], tmp_path / "dicom")  # a real DICOM series of the demo CT
    sitk.WriteImage(sitk.DICOMOrient(ct[160:352, 160:352, 60:100], "LPI"), str(tmp_path / "other.nii.gz"))
    data = tmp_path / "data"
    ok(subprocess.run(
        [sys.executable, str(REPO_ROOT / "data_scripts" / "prepare_ct.py"), "--input", str(tmp_path / "dicom"),
         str(tmp_path / "other.nii.gz"), "--output", str(data), "--spacing", "2", "2", "2", "--val-fraction", "0"],
        capture_output=True, text=True,
    ))  # fmt: skip
    assert len(json.loads((data / "datalist.json").read_text())["training"]) == 2

    ckpt = tmp_path / "models"
    ok(_bundle("training", ["train.json", "quick.json"], "--dataset_dir", str(data), "--ckpt_dir", str(ckpt),
                "--log_dir", str(tmp_path / "logs"), *TINY, *TRAIN))  # fmt: skip
    assert (ckpt / "scale_0" / "generator.pt").is_file() and (ckpt / "scale_1" / "generator.pt").is_file()

    outputs = {}
    for mode in ("memory", "disk"):
        out = tmp_path / mode
        ok(_bundle("inference", ["inference.json", "quick.json"], "--ckpt_dir", str(ckpt), "--output_dir", str(out),
                    *TINY, *LARGER, "--output_buffer", mode, "--seed", "3"))  # fmt: skip
        assert json.loads((out / "cts.json").read_text())["output_buffer"] == mode
        outputs[mode] = out / "ct_000.nii.gz"
        assert (out / "ct_000.png").is_file()
    img = nib.load(outputs["disk"])
    assert img.shape == (64, 64, 96) and img.get_data_dtype() == np.int16
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S") and np.allclose(img.header.get_zooms(), 2.0)
    hu = img.get_fdata()
    assert hu.min() >= -1024 and hu.max() <= 3071 and hu.std() > 0
    assert np.abs(hu - nib.load(outputs["memory"]).get_fdata()).max() <= 1
    # SimpleITK sees the same geometry (in LPS)
    s = sitk.ReadImage(str(outputs["disk"]))
    assert s.GetSize() == (64, 64, 96) and np.allclose(s.GetSpacing(), 2.0)
    assert np.allclose(s.GetOrigin(), [-img.affine[0, 3], -img.affine[1, 3], img.affine[2, 3]], atol=1e-3)
    assert np.allclose(np.array(s.GetDirection()).reshape(3, 3), np.diag([-1, -1, 1]))

    proc = _bundle("inference", ["inference.json", "quick.json"], "--ckpt_dir", str(ckpt), "--output_dir",
                   str(tmp_path / "disk"), *TINY, *LARGER)  # fmt: skip
    assert proc.returncode != 0 and "already exists; refusing to overwrite" in proc.stderr
