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
"""``synthesize`` with ``output_format dicom``: valid files that read back as the NIfTI dataset of the same seeds."""

from __future__ import annotations

import json
import sys

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk
from monai.data import CacheDataset, load_decathlon_datalist
from monai.transforms import LoadImaged
from monai.utils import optional_import
from pydicom.pixels import apply_modality_lut

from monai_msgan.data import demo_ct_path, read_dicom_series
from monai_msgan.synthesis import SyntheticDataset
from tests.conftest import REPO_ROOT
from tests.data.test_dicom_writer import dciodvfy_errors, identifying_values, write_identified_series
from tests.synthesis.test_synthesize import CT, TINY_3D, _generation, run_ok, synthesize_cmd, tiny_checkpoints

_, HAS_PRIVACY = optional_import("monai_msgan.privacy", name="PrivacyAudit")


def test_ct_dicom_dataset_is_valid_and_reads_back_as_the_nifti_one(tmp_path):
    # training data from a patient-like DICOM series, through the project's own preparation script
    ct = sitk.ReadImage(str(demo_ct_path()))[176:336, 176:336, 30:62]
    inputs = write_identified_series(ct, tmp_path / "patient")
    run_ok([sys.executable, str(REPO_ROOT / "data_scripts" / "prepare_ct.py"), "--input", str(tmp_path / "patient"),
            "--output", str(tmp_path / "train"), "--spacing", "4", "4", "5", "--val-fraction", "0"])  # fmt: skip
    ckpt = tiny_checkpoints(CT, TINY_3D, tmp_path / "models")
    args = ["--num_samples", "2", "--training_datalist", str(tmp_path / "train" / "datalist.json")]
    args += ["--privacy_audit", "true" if HAS_PRIVACY else "false"]
    out = {fmt: tmp_path / fmt for fmt in ("nifti", "dicom")}
    for fmt, folder in out.items():
        run_ok(synthesize_cmd(CT, TINY_3D, ckpt, folder, *args, "--output_format", fmt))

    datalist = json.loads((out["dicom"] / "datalist.json").read_text())["training"]
    assert [d["image"] for d in datalist] == ["images/ct_00000", "images/ct_00001"]  # one series folder each
    for i, entry in enumerate(datalist):
        series = out["dicom"] / entry["image"]
        files = sorted(series.iterdir())
        assert len(files) == 32 and all(f.suffix == ".dcm" for f in files)
        for f in files:
            assert dciodvfy_errors(f) == [], f
        ref = sitk.ReadImage(str(out["nifti"] / "images" / f"ct_{i:05d}.nii.gz"))
        (vol,) = read_dicom_series(series)  # how data_scripts/prepare_ct.py reads a series
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
        for img in (vol.image, reader.Execute()):
            assert np.abs(sitk.GetArrayFromImage(img).astype(float) - sitk.GetArrayFromImage(ref)).max() <= 1
            assert np.allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-5)
            assert np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-4)
            assert np.allclose(img.GetDirection(), ref.GetDirection(), atol=1e-6)
        ds = pydicom.dcmread(files[0])
        assert ds.PatientName == f"SYNTHETIC^ct_{i:05d}" and ds.PatientIdentityRemoved == "YES"

    # prepare_ct.py turns the synthetic series into the synthetic NIfTI again (same grid: no resampling)
    run_ok([sys.executable, str(REPO_ROOT / "data_scripts" / "prepare_ct.py"), "--input",
            str(out["dicom"] / "images" / "ct_00000"), "--output", str(tmp_path / "again"), "--spacing", "4", "4", "5",
            "--val-fraction", "0"])  # fmt: skip
    (again,) = json.loads((tmp_path / "again" / "datalist.json").read_text())["training"]
    a, b = nib.load(tmp_path / "again" / again["image"]), nib.load(out["nifti"] / "images" / "ct_00000.nii.gz")
    assert a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-4)
    assert np.abs(a.get_fdata() - b.get_fdata()).max() <= 1

    # a MONAI training reads the DICOM dataset as it is
    data = CacheDataset(
        load_decathlon_datalist(str(out["dicom"] / "datalist.json"), base_dir=str(out["dicom"])),
        LoadImaged("image", ensure_channel_first=True),
        progress=False,
    )
    loaded = data[1]["image"]
    ref = nib.load(out["nifti"] / "images" / "ct_00001.nii.gz")
    assert tuple(loaded.shape) == (1, *ref.shape) and np.allclose(loaded.affine, ref.affine, atol=1e-4)
    assert np.abs(np.asarray(loaded[0]) - ref.get_fdata()).max() <= 1

    # nothing of the patient's files reaches any file of either dataset
    values = identifying_values(inputs)
    for folder in out.values():
        for f in (p for p in folder.rglob("*") if p.is_file()):
            data = f.read_bytes()
            assert [v for v in values if v.encode() in data] == [], f
    manifest = json.loads((out["dicom"] / "manifest.json").read_text())
    assert manifest["dataset"]["output_format"] == "dicom"
    assert manifest["dataset"]["privacy_audit"]["status"] == ("run" if HAS_PRIVACY else "not run")


def test_xray_dicom_dataset_holds_the_nifti_values(tmp_path):
    paths = {}
    for fmt in ("nifti", "dicom"):
        datalist = SyntheticDataset(_generation(tmp_path / fmt, 2), output_format=fmt).run()
        paths[fmt] = [tmp_path / fmt / d["image"] for d in json.loads(datalist.read_text())["training"]]
    assert [p.name for p in paths["dicom"]] == ["sample_00000.dcm", "sample_00001.dcm"]
    uids = set()
    for nii, dcm in zip(paths["nifti"], paths["dicom"]):
        assert dciodvfy_errors(dcm) == []
        ref = nib.load(nii)
        ds = pydicom.dcmread(dcm)
        assert np.abs(apply_modality_lut(ds.pixel_array, ds).T - ref.get_fdata()).max() <= 0.5 / 4095 + 1e-6
        assert [float(v) for v in ds.PixelSpacing] == [0.25, 0.5]  # rows, columns of radiograph_affine((0.5, 0.25))
        assert ds.PatientID.startswith("SYN-") and list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        uids.add(ds.StudyInstanceUID)
    assert len(uids) == 2
