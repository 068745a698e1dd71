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
"""Training under faults and bad input: damaged checkpoints, NaN, configurations that cannot work, I/O faults,
signals, and a faithful resume (library API; the bundle-level cases are in test_bundle_faults.py)."""

from __future__ import annotations

import errno
import functools
import json
import os
import signal

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.networks.nets import PatchDiscriminator
from monai.transforms import Identity
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from monai_msgan.data import load_datalist
from monai_msgan.engines import MultiScaleTraining
from monai_msgan.utils import (
    ConfigurationError,
    NonFiniteError,
    Terminated,
    checkpoint_path,
    ensure_int,
    generator_path,
    load_weights,
)
from tests.reliability.conftest import fail_with, leftovers, tiny_generator

# Tolerance of the resume test: on CPU with the same seed, resumed and uninterrupted runs agree exactly.
RESUME_TOLERANCE = 0.0


def _training(tmp_path, num_iterations=4, files=None, preprocessing=None, **kwargs) -> MultiScaleTraining:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if files is None:
        files = [{"image": torch.rand(1, 64, 64, generator=g) * 2 - 1} for _ in range(3)]
    disc = functools.partial(PatchDiscriminator, spatial_dims=2, channels=4, num_layers_d=2)
    options = dict(
        generator=tiny_generator(),
        base_discriminator=functools.partial(disc, in_channels=1),
        patch_discriminator=functools.partial(disc, in_channels=2),
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        d_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        train_files=files,
        preprocessing=preprocessing or Identity(),
        patch_size=16,
        ckpt_dir=tmp_path / "ckpt",
        log_dir=tmp_path / "logs",
        train_scale=1,
        num_iterations=num_iterations,
        batch_size=2,
        patches_per_image=2,
        save_interval=2,
        log_interval=1,
        preview_interval=100,
        progress=False,
    )
    options.update(kwargs)
    return MultiScaleTraining(**options)


def _with_handler(run: MultiScaleTraining, event, handler) -> MultiScaleTraining:
    """Attach ``handler`` to the trainer that ``run.run()`` builds (after the checkpoint handler)."""
    build = run.build_trainer

    def build_and_attach(scale):
        trainer, writer = build(scale)
        trainer.add_event_handler(event, handler)
        return trainer, writer

    run.build_trainer = build_and_attach
    return run


def test_t01_resume_from_damaged_checkpoint_is_refused(tmp_path):
    _training(tmp_path, num_iterations=2).run()
    ckpt = checkpoint_path(tmp_path / "ckpt", 1)
    generator_path(tmp_path / "ckpt", 1).unlink()
    data = bytearray(ckpt.read_bytes())
    state = torch.load(ckpt, weights_only=True)
    weight = max(state["generator"].values(), key=lambda t: t.numel())
    at = data.find(weight.numpy().tobytes()) + 16
    data[at : at + 4] = b"\x00\x00\xc0\x7f"  # a NaN written over one weight
    ckpt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"checkpoint .*scale_1.checkpoint.pt \(scale 1\) is damaged"):
        _training(tmp_path, num_iterations=4).run()
    assert ckpt.read_bytes() == bytes(data) and not generator_path(tmp_path / "ckpt", 1).exists()


def test_t02_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def nan_from_iteration_3(item):  # two images per iteration, loaded every time (no cache)
        calls["n"] += 1
        return {"image": item["image"] * float("nan")} if calls["n"] > 4 else item

    run = _training(tmp_path, num_iterations=6, preprocessing=nan_from_iteration_3, cache_rate=0.0,
                    image_size=[64, 64])  # fmt: skip
    with pytest.raises(NonFiniteError) as info:
        run.run()
    message = str(info.value)
    assert "scale 1: training stopped" in message and "at iteration 3" in message
    assert "last good checkpoint" in message and "(iteration 2) is kept" in message
    assert load_weights(checkpoint_path(tmp_path / "ckpt", 1))["trainer"]["iteration"] == 2
    assert not generator_path(tmp_path / "ckpt", 1).exists()  # nothing exported


def test_t03_nan_weights_are_not_saved(tmp_path):
    def poison(engine):
        next(engine.generator_ema.module.parameters()).data[:] = float("nan")

    run = _with_handler(_training(tmp_path, num_iterations=4, save_interval=1, ema_half_life=2),
                        Events.ITERATION_COMPLETED(once=1), poison)  # fmt: skip
    with pytest.raises(NonFiniteError, match=r"diverged by iteration 2: refusing to write .*generator_ema"):
        run.run()
    assert load_weights(checkpoint_path(tmp_path / "ckpt", 1))["trainer"]["iteration"] == 1
    assert not generator_path(tmp_path / "ckpt", 1).exists() and not leftovers(tmp_path)


def _steps(log_dir) -> list[int]:
    steps = []
    for f in sorted(log_dir.glob("events.out.tfevents.*")):
        steps += [
            e.step for e in EventFileLoader(str(f)).Load() if any(v.tag.endswith("loss_g") for v in e.summary.value)
        ]
    return steps


def test_t04_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    kw = dict(num_iterations=5, augment=["translation", "cutout"], augment_p=0.5, ema_half_life=2)
    _training(tmp_path / "whole", **kw).run()

    def kill(engine):
        raise KeyboardInterrupt  # as Ctrl-C, after iteration 3 (the last checkpoint is at 2)

    with pytest.raises(KeyboardInterrupt):
        _with_handler(_training(tmp_path / "killed", **kw), Events.ITERATION_COMPLETED(once=3), kill).run()
    assert load_weights(checkpoint_path(tmp_path / "killed/ckpt", 1))["trainer"]["iteration"] == 2
    _training(tmp_path / "killed", **kw).run()
    a = load_weights(generator_path(tmp_path / "whole/ckpt", 1))
    b = load_weights(generator_path(tmp_path / "killed/ckpt", 1))
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= RESUME_TOLERANCE
    steps = _steps(tmp_path / "killed/logs/scale_1")
    assert steps == [1, 2, 3, 4, 5]  # step 3 of the killed run was dropped: no repeats


def test_t05_every_configuration_problem_is_listed_before_work(tmp_path):
    run = _training(tmp_path, image_size=[96, 100], patch_size=78, batch_size=0, num_iterations=[3, 0])
    with pytest.raises(ConfigurationError) as info:
        run.run()
    message = str(info.value)
    assert "4 problem(s)" in message, message
    parts = [
        "option num_iterations must be an integer >= 1, got 0",
        "option batch_size",
        "patch_size [78, 78] must be divisible by 4",
        "image_size [96, 100] must be divisible by 32",
    ]
    for part in parts:
        assert part in message, message
    assert not (tmp_path / "ckpt").exists()


def test_t06_patch_larger_than_a_scale_is_refused_before_scale_0_trains(tmp_path):
    run = _training(tmp_path, train_scale=None, image_size=[64, 64], patch_size=[128, 128])
    with pytest.raises(ConfigurationError, match=r"patch_size \[128, 128\] is larger than scale 1 \(\[64, 64\]"):
        run.run()
    assert not (tmp_path / "ckpt").exists()  # scale 0 did not train first


def test_t07_image_too_small_for_the_configuration(tmp_path):
    files = []
    for i, size in enumerate([(64, 64), (8, 8)]):
        path = tmp_path / f"img{i}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros(size, np.float32), np.eye(4)), path)
        files.append({"image": str(path)})
    run = _training(tmp_path, files=files, image_size=[64, 64])
    with pytest.raises(
        ConfigurationError, match=r"img1.nii.gz: image of size \[8, 8\] is smaller than the minimum \[32, 32\]"
    ):
        run.run()
    assert not (tmp_path / "ckpt").exists()


def test_t08_disk_full_during_a_checkpoint_save(tmp_path, monkeypatch):
    real_save = torch.save

    def full_at_iteration_4(obj, f, *args, **kwargs):
        if obj["trainer"]["iteration"] == 4:
            raise fail_with(errno.ENOSPC)
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_iteration_4)
    with pytest.raises(OSError, match=r"cannot write .*scale_1.checkpoint.pt: the disk is full"):
        _training(tmp_path, num_iterations=6).run()
    assert load_weights(checkpoint_path(tmp_path / "ckpt", 1))["trainer"]["iteration"] == 2
    assert not leftovers(tmp_path)


def test_t09_sigterm_during_training_keeps_the_last_checkpoint(tmp_path):
    def terminate(engine):
        os.kill(os.getpid(), signal.SIGTERM)

    run = _with_handler(_training(tmp_path, num_iterations=6), Events.ITERATION_COMPLETED(once=3), terminate)
    with pytest.raises(Terminated, match="SIGTERM"):
        run.run()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is restored afterwards
    assert load_weights(checkpoint_path(tmp_path / "ckpt", 1))["trainer"]["iteration"] == 2
    assert not generator_path(tmp_path / "ckpt", 1).exists() and not leftovers(tmp_path)


DATALISTS = [
    pytest.param({"training": [{"image": "../outside.nii.gz"}]}, "lies outside", id="T10-path-escapes-dataset"),
    pytest.param({"validation": []}, "has no list under 'training'", id="T11-missing-training-key"),
    pytest.param(
        {"training": [{"label": "a.nii.gz"}]},
        "entry 0 of 'training' is not a dict with an 'image'",
        id="T12-entry-without-image",
    ),
    pytest.param(
        {"training": [{"image": "gone.nii.gz"}]}, "lists image gone.nii.gz, which does not exist", id="T13-missing-file"
    ),
    pytest.param("{not json", "is not valid JSON", id="T14-invalid-json"),
    pytest.param({"training": []}, "'training' is empty", id="T15-empty-training"),
]


@pytest.mark.parametrize("content,match", DATALISTS)
def test_bad_datalists_are_refused_naming_the_file(tmp_path, content, match):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "outside.nii.gz").write_bytes(b"x")
    (data / "datalist.json").write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises((ValueError, FileNotFoundError), match=match) as info:
        load_datalist(data, "training")
    assert "datalist.json" in str(info.value)


@pytest.mark.parametrize(
    "value,match",
    [
        pytest.param("abc", "option seed must be an integer, got 'abc'", id="T16-seed-text"),
        pytest.param("1.5", "option seed must be an integer, got '1.5'", id="T17-seed-fraction"),
        pytest.param(-1, "option seed must be an integer >= 0, got -1", id="T18-seed-negative"),
        pytest.param(float("nan"), "option seed must be an integer, got nan", id="T19-seed-nan"),
    ],
)
def test_options_are_checked_by_type_and_range(value, match):
    with pytest.raises(ValueError, match=match):
        ensure_int(value, "seed", minimum=0)
    assert ensure_int("7", "seed", minimum=0) == 7 and ensure_int(3.0, "seed") == 3
