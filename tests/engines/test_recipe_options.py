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
"""Each option of the training recipe changes the training step in the way it claims."""

from __future__ import annotations

import functools

import pytest
import torch
from ignite.engine import Events
from monai.transforms import Identity

from monai_msgan.engines import MultiScaleTraining
from monai_msgan.losses import diversity_shortfall, histogram_distance, mode_coverage
from monai_msgan.networks import BaseGenerator, MultiScaleGenerator, PatchDiscriminator, PatchGenerator
from monai_msgan.utils import ConfigurationError, checkpoint_path, generator_path, load_weights


def _training(tmp_path, files: list | None = None, **kwargs) -> MultiScaleTraining:
    torch.manual_seed(0)
    generator = MultiScaleGenerator(
        BaseGenerator(2, noise_channels=3, latent_channels=2, features=(4, 4, 8, 8, 8, 4), noise_downsample=2),
        lambda: PatchGenerator(2, channels=4, num_res_blocks=1),
        num_scales=2,
    )
    # very different real images, so that the diversity among them is large
    files = files or [{"image": torch.full((1, 64, 64), v)} for v in (-0.9, 0.0, 0.9)]
    disc = functools.partial(PatchDiscriminator, spatial_dims=2, channels=4, num_layers_d=2, minibatch_std=2)
    options = {
        "train_scale": 0,
        "num_iterations": 2,
        "batch_size": 2,
        "patches_per_image": 2,
        "save_interval": 1,
        "log_interval": 1,
        "preview_interval": 0,
        "progress": False,
        **kwargs,
    }
    return MultiScaleTraining(
        generator=generator,
        base_discriminator=functools.partial(disc, in_channels=1),
        patch_discriminator=functools.partial(disc, in_channels=2),
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        d_optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        train_files=files,
        preprocessing=Identity(),
        patch_size=16,
        ckpt_dir=tmp_path / "ckpt",
        log_dir=None,
        **options,
    )


def _run(training: MultiScaleTraining, scale: int | None = None):
    trainer, _ = training.build_trainer(training.train_scales[0] if scale is None else scale)
    outputs: list[dict] = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: outputs.append({k: v for k, v in e.state.output.items()})
    )
    trainer.run()
    return trainer, outputs


def _band_files() -> list[dict]:
    """Three real images of different layouts: a bright band at a different height in each."""
    bands = [torch.full((1, 64, 64), -0.9) for _ in range(3)]
    for i, b in enumerate(bands):
        b[:, 20 * i : 20 * i + 16] = 0.9
    return [{"image": b} for b in bands]


def test_ema_weights_differ_from_raw_weights_and_are_exported(tmp_path):
    trainer, _ = _run(_training(tmp_path, num_iterations=4, ema_half_life=10.0, ema_rampup=None))
    ckpt = load_weights(checkpoint_path(tmp_path / "ckpt", 0))
    exported = load_weights(generator_path(tmp_path / "ckpt", 0))
    assert set(exported) == set(ckpt["generator_ema"])
    assert all(torch.equal(exported[k], ckpt["generator_ema"][k]) for k in exported)
    assert any(not torch.equal(exported[k], ckpt["generator"][k]) for k in exported)


def test_without_ema_the_trained_weights_are_exported(tmp_path):
    _run(_training(tmp_path, ema_half_life=None))
    ckpt = load_weights(checkpoint_path(tmp_path / "ckpt", 0))
    exported = load_weights(generator_path(tmp_path / "ckpt", 0))
    assert "generator_ema" not in ckpt
    assert all(torch.equal(exported[k], ckpt["generator"][k]) for k in exported)


@pytest.mark.parametrize("scale", [0, 1])
def test_augmentation_is_applied_to_real_and_fake_alike(tmp_path, scale):
    training = _training(
        tmp_path, train_scale=scale, augment=["translation"], augment_p=1.0, ada_target=None, augment_fill=-7.0
    )
    trainer, _ = training.build_trainer(scale)
    seen: list[torch.Tensor] = []
    trainer.discriminator.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].detach()))
    trainer.run()
    # every discriminator input (real, fake, generator step) was shifted: the fill value shows in every batch
    assert len(seen) == 2 * 3
    assert all((x == -7.0).any() for x in seen)
    assert trainer.augment.probability == 1.0
    assert "augment" in load_weights(checkpoint_path(tmp_path / "ckpt", scale))
    plain, _ = _training(tmp_path / "plain", train_scale=scale).build_trainer(scale)
    assert plain.augment is None


def test_intensity_augmentation_strength_reaches_every_scale(tmp_path):
    training = _training(tmp_path, augment=["intensity"], augment_brightness=0.025, augment_contrast=0.05)
    for scale in (0, 1):
        augment = training.build_augment(scale)
        assert (augment.brightness, augment.contrast) == (0.025, 0.05)
        x = torch.rand(8, 2, 16, 16)
        augment.p.fill_(1.0)
        # a tenth of the default strength: no voxel moves by more than 0.025 + 0.05 * its distance from the mean
        assert float((augment(x) - x).abs().max()) <= 0.025 + 0.05 * 1.0 + 1e-6
    default = _training(tmp_path / "default", augment=["intensity"]).build_augment(0)
    assert (default.brightness, default.contrast) == (0.25, 0.5)
    # a bad strength is refused when the training is set up, not when a scale starts training
    with pytest.raises(ValueError, match="augment_brightness must be >= 0 and augment_contrast in"):
        _training(tmp_path / "bad", augment=["intensity"], augment_contrast=1.5)


def test_r1_penalty_is_finite_nonzero_and_lazy(tmp_path):
    trainer, outputs = _run(_training(tmp_path, num_iterations=3, r1_gamma=1.0, r1_interval=2))
    r1 = [o["loss_d_r1"] for o in outputs]
    assert r1[0] > 0 and r1[2] > 0 and all(torch.isfinite(torch.tensor(r1)))
    assert r1[1] == 0.0  # between penalties
    assert all(torch.isfinite(p.grad).all() for p in trainer.discriminator.parameters() if p.grad is not None)


def test_diversity_and_coverage_terms_count_for_an_unconditional_base_only(tmp_path):
    _, outputs = _run(_training(tmp_path, diversity_weight=1.0, coverage_weight=1.0))
    assert all(o["loss_g_div"] > 0 for o in outputs)  # samples differ far less than the real images
    assert all(o["loss_g_cov"] > 0 for o in outputs)  # and some real image is far from every sample
    assert all(o["loss_g"] > o["loss_g_adv"] for o in outputs)
    _, patch_outputs = _run(
        _training(tmp_path / "patch", diversity_weight=1.0, coverage_weight=1.0, train_scale=1), scale=1
    )
    # a patch scale takes its diversity from its coarse input
    assert all(o["loss_g_div"] == 0 and o["loss_g_cov"] == 0 for o in patch_outputs)


def test_coverage_candidates_regenerate_each_real_images_nearest_candidate(tmp_path):
    training = _training(tmp_path, num_iterations=2, coverage_weight=1.0, coverage_candidates=4)
    trainer, _ = training.build_trainer(0)
    calls: list[tuple[bool, torch.Tensor]] = []
    trainer.generator.register_forward_hook(lambda m, inputs, out: calls.append((out.requires_grad, out.detach())))
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    # per iteration: the step's samples (batch 2), 4 candidates per real image without gradients, the 2 chosen
    assert [(grad, out.shape[0]) for grad, out in calls] == [(True, 2), (False, 8), (True, 2)] * 2
    for first in (0, 3):
        candidates, chosen = calls[first + 1][1], calls[first + 2][1]
        # each chosen sample is one of the candidates, regenerated from its noise
        assert all(any(torch.allclose(c, cand, atol=1e-5) for cand in candidates) for c in chosen)
    assert all(o["loss_g_cov"] > 0 for o in outputs)
    # the same start with the step's own samples: one generator call per iteration
    plain, _ = _training(tmp_path / "plain", coverage_weight=1.0).build_trainer(0)
    counted: list[int] = []
    plain.generator.register_forward_hook(lambda m, inputs, out: counted.append(out.shape[0]))
    plain.run()
    assert counted == [2, 2]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="coverage_candidates must be a whole number"):
            _training(tmp_path / "bad", coverage_candidates=bad).build_trainer(0)


def test_coverage_pool_sets_how_coarsely_the_coverage_term_compares_samples_with_real_images(tmp_path):
    files = _band_files()
    losses = {}
    for pool in (4, 32):
        _, outputs = _run(_training(tmp_path / str(pool), files=files, coverage_weight=1.0, coverage_pool=pool))
        # the logged term is the coverage of the step's samples at that pool, recomputed here from them
        for o in outputs:
            assert o["loss_g_cov"] == pytest.approx(mode_coverage(o["fake"], o["real"], pool).item(), rel=1e-5)
        losses[pool] = [o["loss_g_cov"] for o in outputs]
    # the same first samples (same seed): the coarser comparison sees less of where each band lies (never more:
    # 32-pixel means are means of 4-pixel means)
    assert losses[4][0] > losses[32][0]
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="coverage_pool must be a whole number"):
            _training(tmp_path / "bad", coverage_pool=bad).build_trainer(0)


def test_coverage_anchors_pull_the_sample_of_each_real_images_own_fixed_noise(tmp_path):
    def trained(path):
        training = _training(path, num_iterations=3, coverage_weight=1.0, coverage_anchors=True)
        trainer, _ = training.build_trainer(0)
        noises: list[tuple[bool, torch.Tensor]] = []
        trainer.generator.register_forward_hook(lambda m, inputs, out: noises.append((out.requires_grad, inputs[2])))
        steps: list[tuple[list[int], dict]] = []
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED,
            lambda e: steps.append((e.state.batch["anchor_index"].tolist(), dict(e.state.output))),
        )
        trainer.run()
        return noises, steps

    noises, steps = trained(tmp_path / "a")
    # per iteration: the step's samples (batch 2), then the samples of the batch's anchors, both with gradients
    assert [(grad, noise.shape[0]) for grad, noise in noises] == [(True, 2), (True, 2)] * 3
    anchors: dict[int, torch.Tensor] = {}
    for it, (index, output) in enumerate(steps):
        assert set(index) <= {0, 1, 2} and output["loss_g_cov"] > 0
        drawn, anchor = noises[2 * it][1], noises[2 * it + 1][1]
        for i, noise in zip(index, anchor):
            assert torch.equal(anchors.setdefault(i, noise), noise)  # an image's anchor never changes
        assert not torch.equal(drawn, anchor)  # the adversarial samples keep drawing fresh noise
    assert len(anchors) > 1
    assert not any(torch.equal(a, b) for i, a in anchors.items() for j, b in anchors.items() if i < j)
    # another run with the same seed has the same anchors (a resumed run too)
    again, steps_again = trained(tmp_path / "b")
    assert [i for i, _ in steps_again] == [i for i, _ in steps]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(noises[1::2], again[1::2]))


def test_coverage_anchors_are_refused_where_they_cannot_stand_for_an_image(tmp_path):
    cases = {
        "base_patch_size": {"base_patch_size": 32},
        "coverage_candidates > 1 exclude": {"coverage_candidates": 4},
    }
    for message, options in cases.items():
        training = _training(tmp_path / message[:6], coverage_weight=1.0, coverage_anchors=True, **options)
        with pytest.raises(ConfigurationError, match=message):
            training.run()
        assert not (tmp_path / message[:6] / "ckpt").exists()
    # a trainer fed batches without the images' indices says what it needs
    training = _training(tmp_path / "plain", coverage_weight=1.0)
    training.trainer_kwargs["coverage_anchors"] = 3
    with pytest.raises(ValueError, match="coverage_anchors needs each training image's index under 'anchor_index'"):
        _run(training)


def test_packed_base_discriminator_judges_pairs_of_real_and_pairs_of_fake_images(tmp_path):
    training = _training(tmp_path, num_iterations=2, batch_size=4)
    training.base_discriminator = functools.partial(
        PatchDiscriminator, spatial_dims=2, in_channels=1, channels=4, num_layers_d=2, pack=2
    )
    trainer, _ = training.build_trainer(0)
    seen: list[tuple[int, int]] = []
    trainer.discriminator.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0].shape[0], out.shape[0])))
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    # per iteration: real and fake batches for D, the fake batch for G; 4 images each, judged as 2 packs
    assert seen == [(4, 2)] * 6
    assert all(torch.isfinite(torch.tensor([o["loss_d"], o["loss_g"]])).all() for o in outputs)
    # a batch that is no multiple of the pack: refused before training, naming the option; the network itself
    # refuses such a batch too (a trainer built without the check)
    odd = _training(tmp_path / "odd", num_iterations=1, batch_size=3)
    odd.base_discriminator = training.base_discriminator
    with pytest.raises(
        ConfigurationError, match=r"scale 0: the discriminator judges packs of 2 images \(base_disc_pack"
    ):
        odd.run()
    assert not (tmp_path / "odd" / "ckpt").exists()
    with pytest.raises(ValueError, match="packs of 2 images: a batch of 3"):
        _run(odd)


def test_diversity_space_changes_the_term_and_is_checked(tmp_path):
    # real images of different layouts (a bright band at different heights) and of different brightness
    layouts = _band_files()
    _, pixels = _run(_training(tmp_path / "pixels", files=layouts, diversity_weight=1.0))
    _, layout = _run(_training(tmp_path / "layout", files=layouts, diversity_weight=1.0, diversity_space="layout"))
    assert all(o["loss_g_div"] > 0 for o in layout)
    assert [o["loss_g_div"] for o in layout] != [o["loss_g_div"] for o in pixels]
    # images that differ only in brightness have no layout to match: nothing to make up in layout space
    _, flat = _run(_training(tmp_path / "flat", diversity_weight=1.0, diversity_space="layout"))
    assert all(o["loss_g_div"] == 0 for o in flat)
    with pytest.raises(ValueError, match="diversity_space"):
        _training(tmp_path / "bad", diversity_weight=1.0, diversity_space="colour")


def test_diversity_pool_and_space_set_what_the_logged_diversity_term_compares(tmp_path):
    files = _band_files()
    first = {}
    for space, pool in (("layout", 2), ("layout", 8), ("body", 8)):
        training = _training(
            tmp_path / f"{space}{pool}", files=files, diversity_weight=1.0, diversity_space=space, diversity_pool=pool
        )
        trainer, _ = training.build_trainer(0)
        second: list[torch.Tensor] = []  # the generator step's second sample (the last call of each iteration)
        trainer.generator.register_forward_hook(lambda m, inputs, out, seen=second: seen.append(out.detach().clone()))
        outputs: list[dict] = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e, seen=outputs: seen.append(dict(e.state.output)))
        trainer.run()
        # the logged term is the shortfall of the step's two samples in that space at that pool, recomputed here
        assert len(second) == 2 * len(outputs)
        for o, other in zip(outputs, second[1::2]):
            expected = diversity_shortfall(o["fake"], other, o["real"], space, pool)
            assert o["loss_g_div"] == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
        first[space, pool] = outputs[0]["loss_g_div"]
    # the same first samples (same seed), compared at another pool or in another space: another shortfall
    assert first["layout", 2] != pytest.approx(first["layout", 8])
    assert first["body", 8] != pytest.approx(first["layout", 8])
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="diversity_pool must be a whole number"):
            _training(tmp_path / "bad", diversity_pool=bad).build_trainer(0)


def test_histogram_weight_adds_each_samples_histogram_distance_to_the_base_generator_loss(tmp_path):
    weight = 5.0
    _, outputs = _run(_training(tmp_path, histogram_weight=weight))
    for o in outputs:
        # the logged term is the distance of the step's own samples to the batch's real images, recomputed here
        expected = histogram_distance(o["fake"], o["real"]).item()
        assert expected > 0 and o["loss_g_hist"] == pytest.approx(expected, rel=1e-5)
        assert o["loss_g"] == pytest.approx(o["loss_g_adv"] + weight * o["loss_g_hist"], rel=1e-5)
    _, off = _run(_training(tmp_path / "off"))
    assert all(o["loss_g_hist"] == 0 and o["loss_g"] == pytest.approx(o["loss_g_adv"]) for o in off)
    # a patch scale takes its intensities from its coarse input and L1: no histogram term
    _, patch = _run(_training(tmp_path / "patch", histogram_weight=weight, train_scale=1), scale=1)
    assert all(o["loss_g_hist"] == 0 for o in patch)
    with pytest.raises(ValueError, match="histogram weights must be non-negative"):
        _training(tmp_path / "bad", histogram_weight=-1.0).build_trainer(0)


def test_generator_steps_per_iteration(tmp_path):
    trainer, _ = _run(_training(tmp_path, g_steps=2))
    assert all(s["step"] == 4 for s in trainer.g_optimizer.state.values())  # 2 iterations x 2 G steps
    assert all(s["step"] == 2 for s in trainer.d_optimizer.state.values())


def test_l1_only_patch_scale_leaves_the_discriminator_untouched(tmp_path):
    training = _training(tmp_path, train_scale=1, adversarial_weight=[1.0, 0.0])
    trainer, _ = training.build_trainer(1)
    before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    assert all(torch.equal(before[k], v) for k, v in trainer.discriminator.state_dict().items())
    assert all(o["loss_d"] == 0 and o["loss_g_adv"] == 0 and o["loss_g_l1"] > 0 for o in outputs)
    assert trainer.augment is None


def test_coarse_noise_degrades_only_the_coarse_input_the_patch_generator_sees(tmp_path):
    for strength in (0.0, 0.3):
        training = _training(tmp_path / str(strength), files=_band_files(), train_scale=1, coarse_noise=strength)
        trainer, _ = training.build_trainer(1)
        g_seen: list[torch.Tensor] = []
        d_seen: list[torch.Tensor] = []
        trainer.generator.register_forward_pre_hook(lambda m, inputs, s=g_seen: s.append(inputs[0].detach().clone()))
        trainer.discriminator.register_forward_pre_hook(
            lambda m, inputs, s=d_seen: s.append(inputs[0].detach().clone())
        )
        outputs: list[dict] = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e, s=outputs: s.append(dict(e.state.output)))
        trainer.run()
        # one generator call and three discriminator calls (real, fake, generator step) per iteration
        assert len(g_seen) == len(outputs) and len(d_seen) == 3 * len(outputs)
        for i, o in enumerate(outputs):
            clean = o["coarse"]
            for d_input in d_seen[3 * i : 3 * i + 3]:  # the discriminator judges against the clean coarse input
                assert torch.equal(d_input[:, 1:], clean)
            deviation = g_seen[i] - clean
            if strength == 0:
                assert torch.equal(g_seen[i], clean)
                continue
            assert deviation.abs().mean() > 0.01
            per_sample = deviation.flatten(1).std(dim=1)
            assert (per_sample <= 3 * strength).all()
            # smooth: neighbouring pixels deviate alike, far less than the deviation itself varies
            steps = (deviation[..., 1:, :] - deviation[..., :-1, :]).abs().mean()
            assert steps < 0.5 * deviation.abs().mean()  # white noise: about 1.4 times
    for bad in (-0.1, "0.1", True):
        with pytest.raises(ValueError, match="coarse_noise must be a non-negative number"):
            _training(tmp_path / "bad", train_scale=1, coarse_noise=bad).build_trainer(1)
