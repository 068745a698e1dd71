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

import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from monai_msgan.data import demo_ct_path, prepare_cts, read_ct_volume, read_dicom_series

SERIES_UID = "1.2.826.0.1.3680043.2.1125.7.1"


def write_series(image, folder: Path, modality="CT", uid=SERIES_UID, description="chest", shuffle=True) -> Path:
    """Write a real DICOM series (one file per slice, stored values + rescale intercept) with SimpleITK."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(sitk.Maximum(image, -1024), sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d = image.GetDirection()
    names = list(range(image.GetDepth()))
    if shuffle:  # file names say nothing about the order
        random.Random(0).shuffle(names)
    for i in range(image.GetDepth()):
        s = image[:, :, i]
        tags = {
            "0008|0060": modality,
            "0020|000e": uid,
            "0008|103e": description,
            "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, i)))),
            "0020|0037": "\\".join(map(str, (d[0], d[3], d[6], d[1], d[4], d[7]))),
            "0028|1052": "-1024",
            "0028|1053": "1",
            "0020|0013": str(i),
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{uid}.{i}",
        }
        for k, v in tags.items():
            s.SetMetaData(k, v)
        writer.SetFileName(str(folder / f"IMG{names[i]:04d}.dcm"))
        writer.Execute(s)
    return folder


@pytest.fixture(scope="module")
def ct_crop():
    """A 96x96x16 block of the real demo CT (HU, LAS on disk)."""
    return sitk.ReadImage(str(demo_ct_path()))[208:304, 200:296, 40:56]


def _ras(image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, "RAS"))


def test_series_is_ordered_by_position_with_hu_and_spacing(ct_crop, tmp_path):
    folder = write_series(ct_crop, tmp_path / "s")
    assert pydicom.dcmread(folder / "IMG0000.dcm").pixel_array.min() >= 0  # stored values, not HU
    (volume,) = read_dicom_series(folder)
    assert np.allclose(volume.image.GetSpacing(), (0.703125, 0.703125, 2.5))
    assert np.array_equal(_ras(volume.image), np.maximum(_ras(ct_crop), -1024))
    assert volume.name == "s_chest"


def test_two_series_in_one_folder_are_told_apart(ct_crop, tmp_path):
    write_series(ct_crop, tmp_path / "s", description="first")
    write_series(ct_crop[:, :, :8], tmp_path / "other")
    for p in (tmp_path / "other").iterdir():
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = SERIES_UID + ".2"
        ds.SeriesDescription = "second"
        ds.save_as(tmp_path / "s" / f"B_{p.name}")
    volumes = read_dicom_series(tmp_path / "s")
    assert sorted(v.image.GetSize()[2] for v in volumes) == [8, 16]
    assert sorted(v.name for v in volumes) == ["s_first", "s_second"]


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda f: (f / "IMG0007.dcm").unlink(), "missing slice"),
        (lambda f: _edit(f / "IMG0003.dcm", PixelSpacing=[0.8, 0.8]), "PixelSpacing .* differs"),
        (lambda f: _edit(f / "IMG0005.dcm", ImagePositionPatient=pydicom.dcmread(f / "IMG0006.dcm").ImagePositionPatient),
         "mixed or duplicated slices"),
        (lambda f: [_edit(p, Modality="MR") for p in f.iterdir()], "modality 'MR'"),
        (lambda f: [p.unlink() for p in sorted(f.iterdir())[1:]], "single slice"),
        (lambda f: (f / "IMG0002.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 40), "IMG0002.dcm: (cannot read DICOM|no SeriesInstanceUID)"),
    ],
)
def test_bad_series_name_the_problem(ct_crop, tmp_path, damage, match):
    folder = write_series(ct_crop, tmp_path / "s")
    damage(folder)
    with pytest.raises(ValueError, match=match):
        read_dicom_series(folder)


def _edit(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        setattr(ds, k, v)
    ds.save_as(path)


def test_prepare_reorients_resamples_and_keeps_air_clean(ct_crop, tmp_path):
    series = write_series(ct_crop, tmp_path / "s")
    nii = tmp_path / "lps.nii.gz"  # another orientation on disk
    sitk.WriteImage(sitk.DICOMOrient(ct_crop, "LPI"), str(nii))
    mha = tmp_path / "full.mha"
    sitk.WriteImage(sitk.ReadImage(str(demo_ct_path()))[::4, ::4, ::2], str(mha))  # holds -2048 outside the field
    out = tmp_path / "out"
    datalist = prepare_cts([series, nii, mha], out, spacing=(2.0, 2.0, 3.0), val_fraction=0)
    assert [e["image"] for e in datalist["training"]] == ["images/s_chest.nii.gz", "images/lps.nii.gz", "images/full.nii.gz"]
    imgs = [nib.load(out / e["image"]) for e in datalist["training"]]
    for img in imgs:
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        assert np.allclose(img.header.get_zooms(), (2.0, 2.0, 3.0))
        assert img.get_data_dtype() == np.int16
    # the series and the re-oriented NIfTI of the same block give the same prepared volume
    assert np.array_equal(imgs[0].get_fdata(), imgs[1].get_fdata())
    assert np.allclose(imgs[0].affine, imgs[1].affine, atol=1e-3)
    full = imgs[2].get_fdata()
    assert full.min() == -1024 and full.max() <= 3071  # -2048 became air, not a darker-than-air value
    assert imgs[2].shape == (180, 180, 112)  # 128 x 2.8125 mm = 360 mm -> 180 x 2 mm; 67 x 5 mm -> 112 x 3 mm


def test_bad_volume_inputs(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.float32), np.eye(4)), tmp_path / "xray.nii.gz")
    with pytest.raises(ValueError, match="xray.nii.gz: image of size .* is not a 3D volume"):
        read_ct_volume(tmp_path / "xray.nii.gz")
    (tmp_path / "broken.nrrd").write_text("NRRD0004\nnonsense")
    with pytest.raises(ValueError, match="broken.nrrd: cannot read volume"):
        read_ct_volume(tmp_path / "broken.nrrd")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: the folder holds no DICOM series"):
        prepare_cts([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(ValueError, match="spacing"):
        prepare_cts([tmp_path / "xray.nii.gz"], tmp_path / "out", spacing=(1, 1))
