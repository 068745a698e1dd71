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
"""The prepare scripts under bad input and faults: each case asserts the message (one line, no traceback), the exit
code and that no output folder or temporary remains. Most run the script's ``main`` in this process (the CLI minus
the interpreter start); the signal case runs it as a real process."""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from tests.data.test_ct import write_series
from tests.reliability.conftest import SCRIPTS, dead_pid, fail_with, leftovers


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare_xray = _script("prepare_xray")
prepare_ct = _script("prepare_ct")


def _main(module, capsys, *args) -> tuple[int, str]:
    """Run a script's main; returns (exit code, stderr). argparse errors exit through SystemExit."""
    try:
        code = module.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _nothing_left(tmp_path: Path, out: Path) -> None:
    assert not out.exists(), f"{out} was left behind"
    assert not leftovers(tmp_path), leftovers(tmp_path)


def test_d01_same_file_in_training_and_validation(xrays, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _main(prepare_xray, capsys, "--input", xrays, "--output", out, "--validation", xrays / "x1.png")
    assert code == 2 and "x1.png is both a training and a validation input" in err
    _nothing_left(tmp_path, out)


def test_d02_a_copy_in_validation_is_caught_by_content(xrays, tmp_path, capsys):
    copy = tmp_path / "renamed_copy.png"
    copy.write_bytes((xrays / "x0.png").read_bytes())
    out = tmp_path / "out"
    code, err = _main(prepare_xray, capsys, "--input", xrays, "--output", out, "--validation", copy)
    assert code == 2 and "renamed_copy.png (validation) has the same content as" in err and "x0.png" in err
    _nothing_left(tmp_path, out)


def _nan_ct(tmp_path: Path) -> Path:
    hu = np.full((20, 20, 20), 40.0, np.float32)
    hu[5, 5, 5], hu[6, 6, 6] = np.nan, np.inf
    path = tmp_path / "nan_ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def test_d03_nan_voxels_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _main(prepare_ct, capsys, "--input", _nan_ct(tmp_path), "--output", out, "--spacing", 2, 2, 2)
    assert code == 2 and "nan_ct.nii.gz: 2 of 8000 voxels are NaN or infinite" in err and "--replace-nonfinite" in err
    _nothing_left(tmp_path, out)


def test_d04_nan_voxels_replaced_on_request_and_reported(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--input", _nan_ct(tmp_path), "--output", out, "--spacing", 2, 2, 2, "--replace-nonfinite", -1024]
    assert prepare_ct.main([str(a) for a in args]) == 0
    assert "nan_ct.nii.gz: replaced 2 NaN/infinite voxel(s) by -1024 HU" in capsys.readouterr().out
    data = nib.load(out / "images" / "nan_ct.nii.gz").get_fdata()
    assert np.isfinite(data).all() and data.min() == -1024


def test_d05_ct_slice_is_not_a_radiograph(tmp_path, capsys):
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(-1000, 1000, (3, 24, 24)).astype(np.int16))
    series = write_series(image, tmp_path / "series")
    slice_file = sorted(series.iterdir())[0]
    out = tmp_path / "out"
    code, err = _main(prepare_xray, capsys, "--input", slice_file, "--output", out, "--val-fraction", 0)
    assert code == 2 and "DICOM modality CT is not an X-ray modality" in err and "--allow-non-xray" in err
    _nothing_left(tmp_path, out)
    code, _ = _main(
        prepare_xray, capsys, "--input", slice_file, "--output", out, "--val-fraction", 0, "--allow-non-xray"
    )
    assert code == 0 and (out / "datalist.json").is_file()


def test_d06_image_smaller_than_the_minimum(xrays, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _main(prepare_xray, capsys, "--input", xrays, "--output", out, "--min-size", 64)
    assert code == 2 and "image(s) too small" in err and "x0.png (32x32)" in err and "minimum side is 64" in err
    _nothing_left(tmp_path, out)


OPTIONS = [
    pytest.param(prepare_xray, ["--seed", "abc"], "argument --seed: must be an integer, got 'abc'", id="D07-seed-text"),
    pytest.param(
        prepare_xray, ["--seed", "1.5"], "argument --seed: must be an integer, got '1.5'", id="D08-seed-fraction"
    ),
    pytest.param(
        prepare_xray,
        ["--val-fraction", "1.5"],
        "argument --val-fraction: must be a number >= 0 and < 1",
        id="D09-val-fraction",
    ),
    pytest.param(
        prepare_ct,
        ["--spacing", "0", "1", "1"],
        "argument --spacing: must be a number > 0, got '0'",
        id="D10-spacing-zero",
    ),
    pytest.param(
        prepare_ct, ["--window", "100", "-100"], "argument --window: LOW must be below HIGH", id="D11-window-reversed"
    ),
    pytest.param(
        prepare_xray,
        ["--lower-percentile", "90", "--upper-percentile", "10"],
        "lower < upper",
        id="D12-percentiles-reversed",
    ),
    pytest.param(
        prepare_ct, ["--min-size", "0"], "argument --min-size: must be an integer >= 1", id="D13-min-size-zero"
    ),
]


@pytest.mark.parametrize("module,args,match", OPTIONS)
def test_options_are_validated_naming_the_option(xrays, tmp_path, capsys, module, args, match):
    out = tmp_path / "out"
    code, err = _main(module, capsys, "--input", xrays, "--output", out, *args)
    assert code == 2 and match in err, err
    _nothing_left(tmp_path, out)


def test_d14_output_that_is_a_file(xrays, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("precious")
    code, err = _main(prepare_xray, capsys, "--input", xrays, "--output", out)
    assert code == 2 and "exists and is not a folder" in err or "already exists" in err
    assert out.read_text() == "precious" and not leftovers(tmp_path)


def test_d15_existing_dataset_is_kept_without_overwrite(xrays, tmp_path, capsys):
    out = tmp_path / "out"
    assert _main(prepare_xray, capsys, "--input", xrays, "--output", out)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = _main(prepare_xray, capsys, "--input", xrays, "--output", out, "--seed", 3)
    assert code == 2 and "datalist.json already exists" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before and not leftovers(tmp_path)


@pytest.mark.parametrize(
    "target,code_,reason",
    [
        pytest.param("image", errno.ENOSPC, "the disk is full", id="D16-disk-full-at-second-image"),
        pytest.param("datalist", errno.ENOSPC, "the disk is full", id="D17-disk-full-at-datalist"),
        pytest.param("stage", errno.EACCES, "permission denied", id="D18-permission-denied"),
        pytest.param("stage", errno.EROFS, "the file system is read-only", id="D19-read-only-output"),
    ],
)
def test_write_faults_leave_nothing_and_a_rerun_works(xrays, tmp_path, capsys, monkeypatch, target, code_, reason):
    import monai_msgan.data.io as io
    import monai_msgan.utils.atomic as atomic

    out = tmp_path / "out"
    if target == "image":
        real, calls = io.nib.save, []

        def save(img, path):
            calls.append(path)
            real(img, path)
            if len(calls) == 2:  # the second image is half on disk when the disk fills up
                raise fail_with(code_)

        monkeypatch.setattr(io.nib, "save", save)
    elif target == "datalist":
        monkeypatch.setattr(io.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(fail_with(code_)))
    else:
        monkeypatch.setattr(atomic.tempfile, "mkdtemp", lambda **k: (_ for _ in ()).throw(fail_with(code_)))
    code, err = _main(prepare_xray, capsys, "--input", xrays, "--output", out)
    assert code == 2 and f"cannot write {out}" in err and reason in err and ".tmpdir" not in err, err
    assert len(err.strip().splitlines()) == 1
    _nothing_left(tmp_path, out)
    monkeypatch.undo()
    assert _main(prepare_xray, capsys, "--input", xrays, "--output", out)[0] == 0


def test_d20_stale_staging_folder_of_a_killed_run_is_removed(xrays, tmp_path, capsys):
    stale = tmp_path / f".out.{dead_pid()}.k9k9k9k9.tmpdir"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "half.nii.gz").write_bytes(b"half")
    assert _main(prepare_xray, capsys, "--input", xrays, "--output", tmp_path / "out")[0] == 0
    assert not stale.exists() and not leftovers(tmp_path)


def test_d21_damaged_volume_is_named(cts, tmp_path, capsys):
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes((cts / "ct0.nii.gz").read_bytes()[:200])
    out = tmp_path / "out"
    code, err = _main(prepare_ct, capsys, "--input", bad, "--output", out)
    assert code == 2 and "cut.nii.gz: cannot read volume" in err
    _nothing_left(tmp_path, out)


def test_d22_sigterm_mid_write_removes_everything(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray((np.random.default_rng(0).random((2000, 2000)) * 60000).astype(np.uint16)).save(big)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "prepare_xray.py"), "--input", str(big), "--output", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.tmpdir")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)  # while the image is being compressed into the staging folder
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by signal SIGTERM" in err and "Traceback" not in err
    _nothing_left(tmp_path, out)
