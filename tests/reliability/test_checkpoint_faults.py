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
"""Damaged, wrong-kind and non-finite weights files, and faults while writing them (library API)."""

from __future__ import annotations

import argparse
import errno
import os
import shutil

import pytest
import torch

from monai_msgan.utils import (
    CheckpointIntegrityError,
    NonFiniteError,
    generator_path,
    load_weights,
    remove_stale_temporaries,
    save_weights,
)
from tests.reliability.conftest import dead_pid, fail_with, leftovers, tiny_generator


def _damage_middle(path):
    """Overwrite bytes in the middle of the largest tensor's data (stored as is inside the zip archive)."""
    state = torch.load(path, weights_only=True)
    largest = max((v for v in state.values() if isinstance(v, torch.Tensor)), key=lambda t: t.numel())
    data = bytearray(path.read_bytes())
    start = data.find(largest.numpy().tobytes())
    assert start > 0
    mid = start + largest.numel() * largest.element_size() // 2
    data[mid : mid + 8] = b"\x7f" * 8  # the zip structure stays valid: torch.load alone would not notice
    path.write_bytes(bytes(data))


def _copy(trained_dir, tmp_path):
    return shutil.copytree(trained_dir, tmp_path / "models")


DAMAGES = [
    pytest.param(_damage_middle, "scale 1.* is damaged: the SHA-256", id="C01-overwritten-bytes"),
    pytest.param(
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "damaged, truncated", id="C02-truncated"
    ),
    pytest.param(lambda p: p.write_bytes(b""), "damaged, truncated", id="C03-empty"),
    pytest.param(lambda p: p.write_text("not weights"), "damaged, truncated", id="C04-text-file"),
    pytest.param(lambda p: torch.save(torch.zeros(3), p), "holds a Tensor", id="C05-tensor-not-dict"),
    pytest.param(
        lambda p: torch.save({"w": argparse.Namespace(code="runs on load")}, p), "weights-only", id="C06-pickled-object"
    ),
]


@pytest.mark.parametrize("damage,match", DAMAGES)
def test_damaged_generator_is_refused_naming_file_and_scale(trained_dir, tmp_path, damage, match):
    models = _copy(trained_dir, tmp_path)
    path = generator_path(models, 1)
    damage(path)
    model = tiny_generator()
    with pytest.raises(ValueError, match=match) as info:
        model.load_checkpoints(models)
    assert str(path) in str(info.value) and "scale 1" in str(info.value)


def test_c07_nan_weights_are_never_written(tmp_path):
    path = tmp_path / "scale_0" / "generator.pt"
    save_weights({"w": torch.ones(4)}, path)
    before = path.read_bytes()
    with pytest.raises(NonFiniteError, match=r"refusing to write .*scale 0.*'w' holds NaN"):
        save_weights({"w": torch.tensor([1.0, float("nan")])}, path)
    assert path.read_bytes() == before and not leftovers(tmp_path)


def test_c08_nan_weights_in_a_foreign_file_are_refused(tmp_path):
    path = tmp_path / "scale_2" / "generator.pt"
    path.parent.mkdir()
    torch.save({"block": {"w": torch.tensor([float("inf")])}}, path)  # plain torch.save: no integrity record
    with pytest.raises(NonFiniteError, match=r"scale 2.*'block.w'"):
        load_weights(path)


def test_c09_file_without_integrity_record(tmp_path, caplog):
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(load_weights(path)["w"], torch.ones(2))  # older files still load, with a warning
    assert "no integrity record" in caplog.text
    with pytest.raises(CheckpointIntegrityError, match="no integrity record"):
        load_weights(path, require_integrity=True)


@pytest.mark.parametrize(
    "code,reason",
    [
        pytest.param(errno.ENOSPC, "the disk is full", id="C10-disk-full"),
        pytest.param(errno.EACCES, "permission denied", id="C11-permission-denied"),
        pytest.param(errno.EROFS, "the file system is read-only", id="C12-read-only"),
    ],
)
def test_write_faults_keep_the_previous_file(tmp_path, monkeypatch, code, reason):
    path = tmp_path / "scale_0" / "checkpoint.pt"
    save_weights({"w": torch.ones(3)}, path)
    real_save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:
            fh.truncate(10)  # part of the file is on disk when the error strikes
        raise fail_with(code)

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match=f"cannot write {path}: {reason}") as info:
        save_weights({"w": torch.zeros(3)}, path)
    assert info.value.errno == code
    monkeypatch.undo()
    assert torch.equal(load_weights(path)["w"], torch.ones(3)) and not leftovers(tmp_path)


def test_c13_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "models").write_text("a file where a folder should be")
    with pytest.raises(
        NotADirectoryError, match="cannot create the folder .*models.scale_0: a part of the path is a file"
    ):
        save_weights({"w": torch.ones(1)}, tmp_path / "models" / "scale_0" / "generator.pt")


def test_c14_stale_temporaries_of_dead_processes_only_are_removed(tmp_path):
    stale = tmp_path / f".checkpoint.pt.{dead_pid()}.abcd1234.tmp.pt"
    live = tmp_path / f".checkpoint.pt.{os.getpid()}.efgh5678.tmp.pt"
    other = tmp_path / ".hidden_user_file"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()
