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

import functools

import pytest
import torch
from ignite.engine import Events
from monai.networks.nets import PatchDiscriminator
from monai.transforms import Identity

from monai_msgan.engines import MultiScaleTraining
from monai_msgan.handlers import TrainingCheckpoint, snapshot_files, snapshot_path
from monai_msgan.networks import BaseGenerator, MultiScaleGenerator, PatchGenerator
from monai_msgan.utils import ConfigurationError, checkpoint_path, generator_path, load_weights
from tests.reliability.conftest import dead_pid


class Killed(RuntimeError):
    pass


def _setup(tmp_path, num_iterations, train_scale=1, spatial_dims=2, size=128, **kwargs):
    torch.manual_seed(0)
    generator = MultiScaleGenerator(
        BaseGenerator(spatial_dims, features=(4, 4, 8, 8, 8, 4), noise_downsample=2),
        lambda: PatchGenerator(spatial_dims, channels=4, num_res_blocks=1),
        num_scales=3,
    )
    files = [{"image": torch.rand(1, *(size,) * spatial_dims) * 2 - 1} for _ in range(3)]
    disc = functools.partial(PatchDiscriminator, spatial_dims=spatial_dims, channels=4, num_layers_d=2)
    return MultiScaleTraining(
        generator=generator,
        base_discriminator=functools.partial(disc, in_channels=1),
        patch_discriminator=functools.partial(disc, in_channels=2),
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        d_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        train_files=files,
        preprocessing=Identity(),
        patch_size=16,
        ckpt_dir=tmp_path / "ckpt",
        log_dir=tmp_path / "logs",
        train_scale=train_scale,
        num_iterations=num_iterations,
        batch_size=2,
        patches_per_image=2,
        save_interval=2,
        log_interval=1,
        preview_interval=2,
        progress=False,
        **kwargs,
    )


def _record_iterations(trainer) -> list[int]:
    seen: list[int] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.iteration))
    return seen


def _kill_after(trainer, iteration: int) -> None:
    def kill(engine):
        raise Killed(f"simulated kill after iteration {iteration}")

    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=iteration), kill)


def test_killed_run_resumes_at_the_right_iteration(tmp_path):
    first = _setup(tmp_path, num_iterations=6)
    trainer, writer = first.build_trainer(1)
    seen = _record_iterations(trainer)

    _kill_after(trainer, 5)

    with pytest.raises(Killed):
        trainer.run()
    writer.close()
    assert seen == [1, 2, 3, 4, 5]
    ckpt = load_weights(checkpoint_path(tmp_path / "ckpt", 1))
    assert ckpt["trainer"]["iteration"] == 4  # saved every 2 iterations
    assert not generator_path(tmp_path / "ckpt", 1).exists()  # not finished: no exported generator

    second = _setup(tmp_path, num_iterations=6)
    trainer2, writer2 = second.build_trainer(1)
    seen2 = _record_iterations(trainer2)
    loaded = {}
    trainer2.add_event_handler(
        Events.STARTED,
        lambda e: loaded.update({k: v.clone() for k, v in second.generator.scale(1).state_dict().items()}),
    )
    trainer2.run()
    writer2.close()
    assert seen2 == [5, 6]
    for k, v in ckpt["generator"].items():  # the resumed run started from the saved weights
        assert torch.equal(loaded[k], v)
    final = load_weights(generator_path(tmp_path / "ckpt", 1))
    assert final.keys() == ckpt["generator"].keys()
    assert any(not torch.equal(final[k], ckpt["generator"][k]) for k in final)  # and trained further
    assert load_weights(checkpoint_path(tmp_path / "ckpt", 1))["trainer"]["iteration"] == 6
    # TensorBoard event files were written
    assert list((tmp_path / "logs" / "scale_1").glob("events.out.tfevents.*"))


def test_all_scales_train_and_finished_run_is_not_repeated(tmp_path):
    run = _setup(tmp_path, num_iterations=[2, 2, 2], train_scale=None)
    outputs = run.run()
    assert [p.name for p in outputs] == ["generator.pt"] * 3
    stamps = [p.stat().st_mtime_ns for p in outputs]
    trainer, writer = _setup(tmp_path, num_iterations=[2, 2, 2], train_scale=None).build_trainer(0)
    seen = _record_iterations(trainer)
    trainer.run()
    writer.close()
    assert seen == []  # already complete: nothing trained again
    assert outputs[1].stat().st_mtime_ns == stamps[1]


def test_losses_are_reported_and_finite(tmp_path):
    run = _setup(tmp_path, num_iterations=3, train_scale=2)
    trainer, writer = run.build_trainer(2)
    trainer.run()
    writer.close()
    out = trainer.state.output
    for k in ("loss_d", "loss_g", "loss_g_adv", "loss_g_l1"):
        assert isinstance(out[k], float) and out[k] == out[k]
    assert out["loss_g_l1"] > 0  # patch scales are paired with the real patch
    assert out["fake"].shape == out["real"].shape == out["coarse"].shape == (4, 1, 16, 16)


def test_base_scale_is_unpaired_3d_with_bf16_autocast(tmp_path):
    run = _setup(tmp_path, num_iterations=2, train_scale=0, spatial_dims=3, size=128, amp=True)
    trainer, writer = run.build_trainer(0)
    trainer.run()
    writer.close()
    assert trainer.amp_dtype == torch.bfloat16
    assert trainer.state.output["loss_g_l1"] == 0.0  # no coarse input, no condition: nothing to be faithful to
    assert trainer.state.output["fake"].shape == (2, 1, 32, 32, 32)


def test_checkpoint_of_other_network_is_refused(tmp_path):
    _setup(tmp_path, num_iterations=2).run()
    run = _setup(tmp_path, num_iterations=4)
    run.generator = MultiScaleGenerator(
        BaseGenerator(2, features=(4, 4, 8, 8, 8, 4)),
        lambda: PatchGenerator(2, channels=6, num_res_blocks=1),
        num_scales=3,
    )
    trainer, writer = run.build_trainer(1)
    with pytest.raises(ValueError, match="does not fit 'generator'"):
        trainer.run()
    writer.close()


def test_exported_generator_without_checkpoint_is_not_overwritten(tmp_path):
    path = generator_path(tmp_path / "ckpt", 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"precious")
    trainer, writer = _setup(tmp_path, num_iterations=2).build_trainer(1)
    with pytest.raises(FileExistsError, match="Move it away"):
        trainer.run()
    writer.close()
    assert path.read_bytes() == b"precious"


def test_snapshots_hold_the_exported_weights_and_a_resumed_run_writes_the_lost_ones_again(tmp_path):
    """With snapshot_interval the exported (EMA) weights are kept every N iterations; a killed run's snapshots after
    its last checkpoint are deleted on resume and written again; a new run never writes over snapshots."""
    kw = dict(num_iterations=6, ema_half_life=2, snapshot_interval=[0, 1, 0])
    trainer, writer = _setup(tmp_path, **kw).build_trainer(1)

    _kill_after(trainer, 5)

    with pytest.raises(Killed):
        trainer.run()
    writer.close()
    scale_dir = generator_path(tmp_path / "ckpt", 1).parent
    assert list(snapshot_files(generator_path(tmp_path / "ckpt", 1))) == [1, 2, 3, 4, 5]  # checkpoint at 4
    stale = scale_dir / f".generator_000005.pt.{dead_pid()}.abcd1234.tmp.pt"  # a kill during a snapshot's write
    stale.write_bytes(b"x")
    resumed = _setup(tmp_path, **kw)
    trainer, writer = resumed.build_trainer(1)
    at_start = {}
    trainer.add_event_handler(
        Events.STARTED, lambda e: at_start.update(snapshot_files(generator_path(tmp_path / "ckpt", 1)))
    )
    trainer.run()
    writer.close()
    assert list(at_start) == [1, 2, 3, 4] and not stale.exists()  # 5 was after the checkpoint: removed
    snapshots = {i: load_weights(f) for i, f in snapshot_files(generator_path(tmp_path / "ckpt", 1)).items()}
    assert list(snapshots) == [1, 2, 3, 4, 5, 6]
    exported = load_weights(generator_path(tmp_path / "ckpt", 1))
    raw = load_weights(checkpoint_path(tmp_path / "ckpt", 1))["generator"]
    assert all(torch.equal(snapshots[6][k], exported[k]) for k in exported)  # the exported, averaged weights
    assert any(not torch.equal(snapshots[6][k], raw[k]) for k in exported if raw[k].is_floating_point())
    assert any(not torch.equal(snapshots[2][k], snapshots[6][k]) for k in exported)  # weights of their iteration
    assert not list(generator_path(tmp_path / "ckpt", 0).parent.glob("generator_*.pt"))  # 0 for scale 0: none

    trainer, writer = _setup(tmp_path, **{**kw, "num_iterations": 4}).build_trainer(1)
    trainer.run()  # a shorter configuration over a finished run: done, and its snapshots are kept
    writer.close()
    assert list(snapshot_files(generator_path(tmp_path / "ckpt", 1))) == [1, 2, 3, 4, 5, 6]

    checkpoint_path(tmp_path / "ckpt", 1).unlink()  # a new run in the same folder would write over snapshots
    generator_path(tmp_path / "ckpt", 1).unlink()
    trainer, writer = _setup(tmp_path, **kw).build_trainer(1)
    with pytest.raises(FileExistsError, match="generator_000001.pt exists but its training checkpoint"):
        trainer.run()
    writer.close()


def test_snapshot_interval_is_checked():
    with pytest.raises(ValueError, match="snapshot_interval must be >= 0 and needs export_file"):
        TrainingCheckpoint("checkpoint.pt", {}, snapshot_interval=10)
    assert snapshot_path("models/scale_0/generator.pt", 2000).as_posix() == "models/scale_0/generator_002000.pt"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="train_scale"):
        _setup(tmp_path, 2, train_scale=3)
    with pytest.raises(ValueError, match="one per scale"):
        _setup(tmp_path, [2, 2], train_scale=None)
    with pytest.raises(ConfigurationError, match="option snapshot_interval must be an integer >= 0, got -1"):
        _setup(tmp_path, 2, snapshot_interval=-1).run()


def test_patch_wise_base_with_condition_trains_on_aligned_patches(tmp_path):
    """Baseline (a): a one-scale model whose base is a patch generator, trained on random conditioned patches."""
    torch.manual_seed(0)
    files = []
    for _ in range(2):
        img = torch.rand(1, 64, 64) * 2 - 1
        files.append({"image": img, "condition": (img > 0).float()})  # a condition tied to the image
    disc = functools.partial(PatchDiscriminator, spatial_dims=2, channels=4, num_layers_d=2, in_channels=2)
    run = MultiScaleTraining(
        generator=MultiScaleGenerator(
            PatchGenerator(2, condition_channels=1, channels=4, num_res_blocks=1, coarse_input=False), [], 1
        ),
        base_discriminator=disc,
        patch_discriminator=disc,
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        d_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        train_files=files,
        preprocessing=Identity(),
        patch_size=16,
        base_patch_size=16,
        ckpt_dir=tmp_path / "ckpt",
        condition_key="condition",
        num_iterations=2,
        batch_size=2,
        patches_per_image=3,
        progress=False,
    )
    batch = next(iter(run.data_loader(0)))
    assert batch["image"].shape == batch["condition"].shape == (6, 1, 16, 16)
    assert torch.equal(batch["condition"], (batch["image"] > 0).float())  # cropped at the same place
    trainer, _ = run.build_trainer(0)
    trainer.run()
    out = trainer.state.output
    assert out["fake"].shape == (6, 1, 16, 16) and out["coarse"] is None
    assert out["loss_g_l1"] > 0  # paired with the real patch through the condition
    assert generator_path(tmp_path / "ckpt", 0).is_file()


def test_channels_last_trains_like_the_default_layout_scale_by_scale(tmp_path):
    results = {}
    for name, layout in (("default", False), ("channels_last", [True, True, False])):
        run = _setup(
            tmp_path / name, num_iterations=3, train_scale=None, spatial_dims=3, size=128, channels_last=layout
        )
        losses, layouts = [], []
        for scale in range(3):
            trainer, writer = run.build_trainer(scale)

            @trainer.on(Events.ITERATION_COMPLETED)
            def record(engine, scale=scale, trainer=trainer, losses=losses, layouts=layouts):
                losses.append((scale, engine.state.output["loss_d"], engine.state.output["loss_g"]))
                # 3D kernels over several channels: the tensors whose two layouts differ
                kernels = [p for p in trainer.generator.parameters() if p.ndim == 5 and min(p.shape[1:]) > 1]
                layouts.append(all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in kernels))

            trainer.run()
            writer.close()
        results[name] = losses
        # the layout is used on the scales that ask for it, while they train
        assert layouts == ([False] * 9 if name == "default" else [True] * 6 + [False] * 3)
        run.run()  # already trained: puts nothing new, returns every scale in the default layout
        assert all(p.is_contiguous() for p in run.generator.parameters())
    # the same computation: each scale's first iteration (same initial weights and data) gives the same losses to
    # float precision; later ones stay close (a bias before a normalisation gets a gradient of rounding noise only,
    # and Adam turns that into a step of up to the learning rate, 1e-3, of either sign)
    for i, ((s, d, g), (s2, d2, g2)) in enumerate(zip(results["default"], results["channels_last"])):
        tolerance = 1e-4 if i % 3 == 0 else 1e-2
        assert s == s2
        assert d2 == pytest.approx(d, rel=tolerance) and g2 == pytest.approx(g, rel=tolerance)
    for scale in range(3):
        first = load_weights(generator_path(tmp_path / "default" / "ckpt", scale))
        second = load_weights(generator_path(tmp_path / "channels_last" / "ckpt", scale))
        assert first.keys() == second.keys()
        for k in first:
            torch.testing.assert_close(second[k].float(), first[k].float(), rtol=0, atol=2 * 3 * 1e-3)


def test_channels_last_checkpoint_resumes_in_the_default_layout(tmp_path):
    first = _setup(tmp_path, num_iterations=2, train_scale=1, spatial_dims=3, size=128, channels_last=True)
    first.run()
    second = _setup(tmp_path, num_iterations=4, train_scale=1, spatial_dims=3, size=128)
    trainer, writer = second.build_trainer(1)
    seen = _record_iterations(trainer)
    trainer.run()
    writer.close()
    assert seen == [3, 4]
    with pytest.raises(ValueError, match="channels_last"):
        _setup(tmp_path, 2, train_scale=None, channels_last="sideways")
