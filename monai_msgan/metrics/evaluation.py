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
"""Evaluate a trained multi-scale GAN against held-out real images: metrics.json and a comparison panel."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import monai_msgan
from monai_msgan.data.io import mid_planes, montage, save_png_preview, write_json
from monai_msgan.metrics.intensity import (
    body_mask,
    body_solidity,
    intensity_distance,
    intensity_quantiles,
    outside_body_air,
)
from monai_msgan.metrics.seams import grid_lines, seam_score
from monai_msgan.metrics.similarity import paired_fidelity, pairwise_diversity
from monai_msgan.metrics.swd import SlicedWassersteinDistance
from monai_msgan.synthesis.synthesizer import MultiScaleSynthesizer
from monai_msgan.utils.atomic import check_writable
from monai_msgan.utils.flags import ensure_bool

__all__ = ["GenerationEvaluation"]


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


class GenerationEvaluation:
    """Generates images at the size of the held-out real ones and compares them with the held-out set.

    Unconditional models make ``num_samples`` images. Conditional (translation) models, with ``condition_key``
    set, make ``num_samples`` images from the condition of every held-out image (the preprocessing derives it, e.g.
    :class:`~monai_msgan.transforms.EdgeMapd`), and each is also compared with its own real image.

    Writes ``output_dir/metrics.json`` with: SWD per Laplacian level (real vs generated, ×10³ as usually reported),
    the seam score of the generated images on the finest scale's window grid and, for reference, of the real images
    on the same grid, the pairwise diversity of samples (of the same condition, for conditional models; omitted with
    one sample), and for conditional models the paired fidelity (SSIM, PSNR, MAE in ``[0, 1]`` intensity units).
    It also records intensity fidelity: the 1-Wasserstein distance between each generated image's intensity
    histogram and the held-out real images' (:func:`~monai_msgan.metrics.intensity_distance`) and intensity
    quantiles of both, in HU when ``intensity_range`` gives the HU window of the model range (CT), where it adds
    the fraction of outside-the-body voxels that are air (:func:`~monai_msgan.metrics.outside_body_air`; the mean,
    and each sample's own under ``generated_per_sample``) and how
    convex the body's axial outline is (:func:`~monai_msgan.metrics.body_solidity`: a real trunk scores near 1,
    loops and broken shapes far less, which no other figure here sees); and the
    diversity among real images (held-out plus ``reference_files``) next to the samples' own, on the same metric.
    Unconditional models also get the SWD against every real image (held-out plus ``reference_files``,
    ``swd_all_real_x1e3_*``): a steadier fidelity figure where only one or two images are held out, which rewards
    copying the training images as much as learning their statistics, so read it next to the held-out SWD.
    ``output_dir/panel.png`` shows the condition (conditional models), a real image, one or two samples, and a 4×
    zoom of a generated image around the window-grid crossing nearest its centre (CT in a -1000..1000 HU window);
    ``output_dir/samples.png`` shows every sample (of the first condition), four a row.

    Args:
        synthesizer: trained synthesizer.
        real_files: datalist entries of held-out images.
        preprocessing: the training preprocessing (images in the model range ``[-1, 1]``).
        output_dir: where the results go.
        num_samples: generated images.
        seed: seed of the first sample.
        image_key: datalist key of the image.
        swd_levels: Laplacian levels (reduced for small images).
        overwrite: replace existing results.
        condition_key: key of the condition the preprocessing makes (conditional models), or None.
        reference_files: further real images (e.g. the training list) for the diversity among real images and the
            SWD against every real image.
        intensity_range: the intensities that the model range ``[-1, 1]`` stands for, e.g. a CT's HU window
            ``[-1024, 3071]``: intensity metrics are then in those units and CT air metrics are added. None = the
            ``[0, 1]`` units of normalised radiographs.
    """

    def __init__(
        self,
        synthesizer: MultiScaleSynthesizer,
        real_files: Sequence[dict],
        preprocessing: Callable,
        output_dir: str | os.PathLike,
        num_samples: int = 4,
        seed: int = 1000,
        image_key: str = "image",
        swd_levels: int = 4,
        overwrite: bool = False,
        condition_key: str | None = None,
        reference_files: Sequence[dict] | None = None,
        intensity_range: Sequence[float] | None = None,
    ) -> None:
        if len(real_files) == 0:
            raise ValueError("no held-out images to evaluate against (the datalist's 'validation' list is empty).")
        if num_samples < (1 if condition_key else 2):
            raise ValueError(
                f"num_samples must be at least {1 if condition_key else 2} (unconditional diversity compares pairs)."
            )
        self.condition_key = condition_key
        self.synthesizer = synthesizer
        self.real_files = list(real_files)
        self.preprocessing = preprocessing
        self.output_dir = Path(output_dir)
        self.num_samples = num_samples
        self.seed = seed
        self.image_key = image_key
        self.swd_levels = swd_levels
        self.overwrite = ensure_bool(overwrite, "overwrite")
        self.reference_files = list(reference_files or [])
        if intensity_range is not None and (len(intensity_range) != 2 or intensity_range[0] >= intensity_range[1]):
            raise ValueError(f"intensity_range must be [low, high] with low < high, got {intensity_range}.")
        self.intensity_range = None if intensity_range is None else [float(v) for v in intensity_range]

    def _units(self, unit: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` intensities in the images' own units (HU for CT)."""
        if self.intensity_range is None:
            return unit
        lo, hi = self.intensity_range
        return unit * (hi - lo) + lo

    def _display(self, unit: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` intensities for the panel: CT in a -1000..1000 HU window, radiographs as they are."""
        if self.intensity_range is None:
            return unit
        return ((self._units(unit) + 1000.0) / 2000.0).clamp(0, 1)

    def _intensity_metrics(self, fake: torch.Tensor, real: torch.Tensor) -> dict:
        fake_u, real_u = self._units(fake), self._units(real)
        out: dict = {
            "units": "HU" if self.intensity_range is not None else "[0, 1]",
            "distance_to_real": round(intensity_distance(fake_u, real_u)["mean"], 4),
            "quantiles_generated": {k: round(v, 4) for k, v in intensity_quantiles(fake_u).items()},
            "quantiles_real": {k: round(v, 4) for k, v in intensity_quantiles(real_u).items()},
        }
        if self.intensity_range is not None and fake.ndim == 5:
            # each volume's body once, for the air around it and its outline
            gen_bodies = [body_mask(f.squeeze()) for f in fake_u]
            real_bodies = [body_mask(r.squeeze()) for r in real_u]
            gen = [outside_body_air(f, body=b) for f, b in zip(fake_u, gen_bodies)]
            ref = [outside_body_air(r, body=b) for r, b in zip(real_u, real_bodies)]
            out["outside_body_air"] = {
                "generated": round(sum(g["outside_air_fraction"] for g in gen) / len(gen), 4),
                "real": round(sum(r["outside_air_fraction"] for r in ref) / len(ref), 4),
                "outside_fraction_generated": round(sum(g["outside_fraction"] for g in gen) / len(gen), 4),
                "outside_fraction_real": round(sum(r["outside_fraction"] for r in ref) / len(ref), 4),
                # each sample's own figure, in sampling order: a few hazy samples and a halo round every body
                # give the same mean
                "generated_per_sample": [round(g["outside_air_fraction"], 4) for g in gen],
            }
            out["body_solidity"] = {
                "generated": round(sum(body_solidity(f, body=b) for f, b in zip(fake_u, gen_bodies)) / len(fake_u), 4),
                "real": round(sum(body_solidity(r, body=b) for r, b in zip(real_u, real_bodies)) / len(real_u), 4),
            }
        return out

    def _reference_images(self, real: torch.Tensor) -> list[torch.Tensor]:
        """The ``reference_files`` that preprocess to the held-out images' size, in ``[0, 1]``."""
        images = []
        for f in self.reference_files:
            x = _to_unit(torch.as_tensor(self.preprocessing(f)[self.image_key]))
            if tuple(x.shape) == tuple(real.shape[1:]):
                images.append(x)
        return images

    def _load(self) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        reals, conds = [], []
        for f in self.real_files:
            item = self.preprocessing(f)
            reals.append(_to_unit(torch.as_tensor(item[self.image_key])))
            if self.condition_key is not None:
                if self.condition_key not in item:
                    raise ValueError(f"the preprocessing of {f} made no condition '{self.condition_key}'.")
                conds.append(torch.as_tensor(item[self.condition_key], dtype=torch.float32))
        sizes = {tuple(r.shape) for r in reals}
        if len(sizes) > 1:
            raise ValueError(f"held-out images must share one size after preprocessing, got {sorted(sizes)}.")
        return torch.stack(reals), (conds if self.condition_key is not None else None)

    def _describe_synthesis(self) -> dict:
        syn = self.synthesizer
        return {
            "num_scales": syn.num_scales,
            "generated_scales": syn.generated_scales,
            "patch_size": list(syn.patch_size),
            "overlap": syn.overlap,
            "base_window": None if syn.base_window is None else list(syn.base_window),
        }

    def run(self) -> dict:
        metrics_path = check_writable(self.output_dir / "metrics.json", self.overwrite)
        panel_path = check_writable(self.output_dir / "panel.png", self.overwrite)
        sheet_path = check_writable(self.output_dir / "samples.png", self.overwrite)
        real, conds = self._load()
        size = tuple(real.shape[2:])
        seeds = [self.seed + i for i in range(self.num_samples)]
        t0 = time.perf_counter()
        if conds is None:
            groups = [torch.stack([_to_unit(self.synthesizer(size, seed=s)) for s in seeds])]
        else:  # one group of samples per held-out condition
            groups = [
                torch.stack([_to_unit(self.synthesizer(size, seed=s, condition=c)) for s in seeds]) for c in conds
            ]
        fake = torch.cat(groups)
        seconds = time.perf_counter() - t0
        levels = max(1, min(self.swd_levels, int(math.log2(min(size) / 16)) + 1))
        swd = SlicedWassersteinDistance(levels=levels)(real, fake)
        patch, overlap = self.synthesizer.patch_size, self.synthesizer.overlap
        result = {
            "evaluator": f"monai-msgan {monai_msgan.__version__}",
            "conditional": conds is not None,
            "num_real": len(self.real_files),
            "num_generated": len(fake),
            "image_size": list(size),
            "synthesis": self._describe_synthesis(),
            "swd_x1e3_per_level": [round(v * 1e3, 3) for v in swd],
            "swd_x1e3_mean": round(sum(swd) / len(swd) * 1e3, 3),
            "seam_score_generated": round(sum(seam_score(f, patch, overlap) for f in fake) / len(fake), 4),
            "seam_score_real": round(sum(seam_score(r, patch, overlap) for r in real) / len(real), 4),
        }
        if conds is not None:
            paired = real.repeat_interleave(self.num_samples, dim=0)
            result["paired_fidelity"] = {k: round(v, 4) for k, v in paired_fidelity(fake, paired).items()}
        result["intensity"] = self._intensity_metrics(fake, real)
        if self.num_samples >= 2:
            div = [pairwise_diversity(g) for g in groups]
            result["diversity"] = {
                "metric": div[0]["metric"],
                "mean": sum(d["mean"] for d in div) / len(div),
                "median": sum(d["median"] for d in div) / len(div),
                "pairs": sum(d["pairs"] for d in div),
            }
        references = self._reference_images(real)
        all_real = torch.cat([real, *(r[None] for r in references)])  # held-out and reference images
        if references and conds is None:  # fidelity to every real image, steadier than a few held-out ones
            swd_all = SlicedWassersteinDistance(levels=levels)(all_real, fake)
            result["num_real_all"] = len(all_real)
            result["swd_all_real_x1e3_per_level"] = [round(v * 1e3, 3) for v in swd_all]
            result["swd_all_real_x1e3_mean"] = round(sum(swd_all) / len(swd_all) * 1e3, 3)
        if len(all_real) >= 2:
            result["diversity_real"] = pairwise_diversity(all_real)
        result["generation_seconds_per_sample"] = round(seconds / len(fake), 3)
        result["seeds"] = seeds
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_json(result, metrics_path)
        self._panel(real[0], groups[0], panel_path, None if conds is None else conds[0])
        self._sheet(groups[0], sheet_path)
        print(f"metrics: {metrics_path}\npanel: {panel_path}\nsamples: {sheet_path}", flush=True)
        return result

    def _sheet(self, fake: torch.Tensor, path: Path, per_row: int = 4, tile: int = 256) -> None:
        """Every sample (of the first condition) on one contact sheet, ``per_row`` a row, ``tile`` px each: the
        panel shows two, and collapse or a broken sample shows only beside the rest."""
        tiles = [montage(mid_planes(self._display(x)), tile) for x in fake]
        height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
        tiles = [torch.nn.functional.pad(t, (0, width + 4 - t.shape[1], 0, height + 4 - t.shape[0])) for t in tiles]
        tiles += [torch.zeros_like(tiles[0])] * (-len(tiles) % per_row)
        rows = [torch.cat(tiles[i : i + per_row], 1) for i in range(0, len(tiles), per_row)]
        save_png_preview(None, path, (0.0, 1.0), 4096, self.overwrite, planes=[torch.cat(rows, 0).transpose(0, 1)])

    def _panel(self, real: torch.Tensor, fake: torch.Tensor, path: Path, condition: torch.Tensor | None) -> None:
        images = [self._display(x) for x in (real, *fake[:2])]
        shown = ([] if condition is None else [condition[:1].clamp(0, 1)]) + images
        planes = [montage(mid_planes(x), 512) for x in shown]
        # zoom on the window-grid crossing nearest the centre of the first generated image (its first plane)
        plane = mid_planes(self._display(fake[0]))[0]
        lines = grid_lines(tuple(plane.shape), self.synthesizer.patch_size[:2], self.synthesizer.overlap)
        cx, cy = (min(ln, key=lambda p, c=n // 2: abs(p - c)) if ln else n // 2 for ln, n in zip(lines, plane.shape))
        half = max(8, min(self.synthesizer.patch_size[:2]) // 2)
        crop = plane[max(cx - half, 0) : cx + half, max(cy - half, 0) : cy + half]
        zoom = torch.nn.functional.interpolate(crop[None, None], scale_factor=4, mode="nearest")[0, 0].transpose(0, 1)
        tiles = [*planes, zoom]
        height = max(t.shape[0] for t in tiles)
        tiles = [torch.nn.functional.pad(t, (0, 4, 0, height - t.shape[0])) for t in tiles]
        save_png_preview(None, path, (0.0, 1.0), 4096, self.overwrite, planes=[torch.cat(tiles, 1).transpose(0, 1)])
