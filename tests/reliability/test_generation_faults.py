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
"""Generation under faults: non-finite images, interrupted multi-sample runs, I/O faults and signals while writing,
stale temporaries (library API; the bundle-level case with a damaged generator is in test_bundle_faults.py)."""

from __future__ import annotations

import errno
import gzip
import json
import os
import signal

import numpy as np
import pytest

import monai_msgan.data.io as io
import monai_msgan.synthesis.generate as generate
from monai_msgan.data.io import NiftiStreamWriter
from monai_msgan.synthesis import MultiScaleSynthesizer, SampleGeneration
from monai_msgan.utils import NonFiniteError, Terminated
from tests.reliability.conftest import dead_pid, fail_with, leftovers, tiny_generator

SIZE = (64, 64)


def _generation(out, num_samples=1, output_buffer="memory", model=None, **kwargs) -> SampleGeneration:
    synth = MultiScaleSynthesizer(model or tiny_generator(), 32, device="cpu")
    return SampleGeneration(synth, SIZE, out, np.eye(4), num_samples=num_samples, output_buffer=output_buffer, **kwargs)


@pytest.mark.parametrize(
    "buffer", [pytest.param("memory", id="G01-nan-image-memory"), pytest.param("disk", id="G02-nan-image-disk")]
)
def test_non_finite_images_are_never_written(tmp_path, buffer):
    model = tiny_generator()
    next(model.scale(1).parameters()).data[0] = float("nan")  # weights damaged in memory after loading
    with pytest.raises(NonFiniteError, match=r"sample_000.nii.gz \(seed 0\) would hold NaN or infinite values"):
        _generation(tmp_path / "out", output_buffer=buffer, model=model).run()
    assert not list((tmp_path / "out").iterdir())


def _files(out):
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir()}


def test_g03_interrupted_multi_sample_run_continues(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real, calls = generate.save_png_preview, []

    def killed_at_third_preview(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C between the third NIfTI and its preview
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "save_png_preview", killed_at_third_preview)
    with pytest.raises(KeyboardInterrupt):
        _generation(out, num_samples=4).run()
    monkeypatch.undo()
    record = json.loads((out / "samples.json").read_text())
    assert record["complete"] is False and [s["seed"] for s in record["samples"]] == [0, 1]
    before = _files(out)
    assert "sample_002.nii.gz" in before and "sample_002.png" not in before  # written, but not recorded
    _generation(out, num_samples=4).run()  # the same command again: continues
    after = _files(out)
    assert all(after[n] == before[n] for n in ("sample_000.nii.gz", "sample_001.png"))  # kept, not regenerated
    record = json.loads((out / "samples.json").read_text())
    assert record["complete"] is True and [s["seed"] for s in record["samples"]] == [0, 1, 2, 3]
    assert not leftovers(tmp_path)


def test_g04_finished_run_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    _generation(out, num_samples=1).run()
    with pytest.raises(FileExistsError, match="sample_000.nii.gz already exists"):
        _generation(out, num_samples=1).run()
    with pytest.raises(FileExistsError, match="already exists"):  # other settings never continue a run
        _generation(out, num_samples=2, seed=5).run()


@pytest.mark.parametrize(
    "code,reason",
    [
        pytest.param(errno.ENOSPC, "the disk is full", id="G05-disk-full"),
        pytest.param(errno.EROFS, "read-only", id="G06-read-only"),
    ],
)
def test_write_fault_during_a_sample_keeps_finished_ones(tmp_path, monkeypatch, code, reason):
    out = tmp_path / "out"
    real, calls = io.nib.save, []

    def fail_second(img, path):
        calls.append(path)
        real(img, path)
        if len(calls) == 2:
            raise fail_with(code)

    monkeypatch.setattr(io.nib, "save", fail_second)
    with pytest.raises(OSError, match=f"cannot write {out / 'sample_001.nii.gz'}: .*{reason}"):
        _generation(out, num_samples=2).run()
    assert sorted(p.name for p in out.iterdir()) == ["sample_000.nii.gz", "sample_000.png", "samples.json"]
    assert not leftovers(tmp_path)


def test_g07_stream_writer_cleans_up_when_closing_fails(tmp_path, monkeypatch):
    class FullOnClose(gzip.GzipFile):
        def close(self):
            super().close()
            raise fail_with(errno.ENOSPC)

    monkeypatch.setattr(gzip, "open", lambda path, mode, compresslevel: FullOnClose(path, mode, compresslevel))
    path = tmp_path / "img.nii.gz"
    with pytest.raises(OSError, match="img.nii.gz: the disk is full"):
        with NiftiStreamWriter(path, (4, 4, 2), np.eye(4)) as w:
            w.write(np.zeros((4, 4, 2)))
    assert list(tmp_path.iterdir()) == []


def test_g08_sigterm_during_generation(tmp_path):
    model = tiny_generator()
    forward = model.scale(1).forward

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the finest scale is being made
        return forward(*args, **kwargs)

    model.scale(1).forward = terminated
    with pytest.raises(Terminated):
        _generation(tmp_path / "out", output_buffer="disk", model=model).run()
    assert not list((tmp_path / "out").iterdir()) and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_g09_stale_temporaries_in_the_output_folder_are_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".sample_000.nii.gz.{dead_pid()}.x1y2z3w4.tmp.nii.gz"
    stale.write_bytes(b"half an image")
    _generation(out).run()
    assert not stale.exists() and (out / "sample_000.nii.gz").is_file()


def test_g10_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("precious")
    with pytest.raises(OSError, match="out: it exists and is not a folder|Not a directory"):
        _generation(tmp_path / "out").run()
    assert (tmp_path / "out").read_text() == "precious"
