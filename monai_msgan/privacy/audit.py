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
"""A memorisation audit: is a generated image a copy of a training image, whole or in part?

See ``docs/privacy.md`` for the method, the calibration of the thresholds and the measured cost.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_msgan.data.io import read_json
from monai_msgan.privacy.features import (
    PatchIndex,
    as_spatial,
    canonical_grid,
    gaussian_blur,
    grid_variants,
    infer_spatial_dims,
    nearest,
    normalise_intensity,
    patch_descriptors,
    variant_flips,
    variant_offsets,
)

__all__ = [
    "PrivacyAudit",
    "DEFAULT_SETTINGS",
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLDS",
    "ImageFiles",
    "load_image",
    "datalist_files",
]

logger = logging.getLogger(__name__)

#: Per spatial dimension: descriptor grids and patch sizes (see docs/privacy.md for why and what they cost).
DEFAULT_SETTINGS: dict[int, dict[str, int]] = {
    2: {
        "global_size": 64,
        "max_shift": 3,
        "local_size": 128,
        "patch_size": 32,
        "pool": 4,
        "patch_stride": 8,
        "query_stride": 1,
    },
    3: {
        "global_size": 32,
        "max_shift": 1,
        "local_size": 32,
        "patch_size": 12,
        "pool": 3,
        "patch_stride": 3,
        "query_stride": 1,
    },
}
#: Threshold = margin × the closest unseen real image's distance. Copies sit near 0 globally while unrelated
#: images spread widely, hence the stricter global margin; patch matches of unrelated images are closer together.
DEFAULT_MARGIN: dict[str, float] = {"global": 0.2, "local": 0.5}
#: Thresholds used when there is nothing to calibrate on (one training image and no held-out image).
DEFAULT_THRESHOLDS: dict[str, float] = {"global": 0.02, "local": 0.02}


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image channel-first with MONAI's ``LoadImage`` (NIfTI, PNG, MHA, NRRD, DICOM, ...).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the file, when it cannot be read as an image.
    """
    from monai.transforms import LoadImage

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    try:
        return LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    except Exception as e:
        raise ValueError(f"{path} cannot be read as an image: {e}") from e


class ImageFiles(Sequence):
    """A lazy sequence of image files: item ``i`` is read (and transformed) only when it is asked for."""

    def __init__(self, paths: Sequence[str | os.PathLike], transform: Callable | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        image = load_image(self.paths[i])
        if self.transform is not None:
            try:
                image = self.transform(image)
            except Exception as e:
                raise ValueError(f"{self.paths[i]}: the audit's transform failed: {e}") from e
        return image


def datalist_files(
    datalist: str | os.PathLike, section: str, key: str = "image", allow_missing: bool = False
) -> list[Path]:
    """The ``key`` files of ``section`` in a MONAI datalist (a JSON file, or a folder holding ``datalist.json``),
    relative paths resolved against the datalist's folder.

    Raises:
        FileNotFoundError: when the datalist or a file it lists does not exist.
        ValueError: when the datalist is malformed, or the section is missing or empty (unless ``allow_missing``).
    """
    path = Path(datalist)
    path = path / "datalist.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give a MONAI datalist JSON or a folder holding datalist.json.")
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a MONAI datalist (a JSON object with a '{section}' list).")
    items = data.get(section)
    if items is None and allow_missing:
        return []
    if not isinstance(items, list) or (not items and not allow_missing):
        raise ValueError(f"{path} has no non-empty list under '{section}'.")
    files = []
    for i, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if not isinstance(value, str):
            raise ValueError(f"{path}: entry {i} of '{section}' has no '{key}' file path.")
        p = Path(value) if Path(value).is_absolute() else path.parent / value
        if not p.is_file():
            raise FileNotFoundError(f"{path}: entry {i} of '{section}' lists {value}, which does not exist ({p}).")
        files.append(p)
    return files


class PrivacyAudit:
    """Nearest-training-image distances of generated images, globally and patch-wise, with calibrated thresholds.

    The training set is indexed once: every image is intensity-normalised (its 1st/99th percentiles to 0/1),
    resized so its longest side fills a ``global_size`` grid (``local_size`` for patches) and padded, centred, to
    a square/cube. The global index holds each grid, smoothed (``global_blur`` px), as a zero-mean unit-norm vector
    of its central window; the local index holds the ``max_patches_per_image`` most structured patches of
    ``patch_size`` every ``patch_stride`` pixels of the (``local_blur``-smoothed) local grid, average-pooled by
    ``pool`` and detrended (their best-fit plane removed), in a :class:`PatchIndex`. Distances are ``1 - Pearson
    correlation``: 0 for a copy up to a linear intensity change.

    :meth:`check` compares a candidate's grid, shifted by up to ``max_shift`` pixels along every axis and flipped
    along every subset of axes, with every training grid (``global_distance``: the smallest distance), and every
    structured patch of the candidate every ``query_stride`` pixels with every indexed training patch
    (``local_distance``: the best-matching patch). A candidate is flagged when either distance is below its
    threshold.

    Thresholds are ``margin`` times the ``quantile`` of the same distances of real images that are not in the
    training set: the ``held_out`` images when given, otherwise each of up to ``max_calibration`` training images
    against the others (leave-one-out); with a single training image and nothing held out, ``DEFAULT_THRESHOLDS``.
    ``thresholds`` overrides all of that.

    Args:
        training: the training images, arrays or tensors shaped ``(C, *spatial)`` or ``(*spatial)`` in any
            intensity range (a lazy sequence such as :class:`ImageFiles` keeps memory flat).
        names: a name per training image, reported as ``nearest_training`` (file names, never patient attributes);
            default ``training_<i>``.
        spatial_dims: 2 or 3; default inferred from the first training image (see ``infer_spatial_dims``).
        held_out: real images not used for training, for calibration.
        thresholds: ``{"global": g, "local": l}`` to use instead of calibrating.
        margin: threshold = ``margin`` × the calibration quantile (below 1: a candidate must be clearly closer to a
            training image than unseen real images are); a number, or per kind; default ``DEFAULT_MARGIN``.
        quantile: quantile of the calibration distances (0: the closest unseen real image).
        max_calibration: most training images used for leave-one-out calibration (drawn with ``seed``).
        global_size, max_shift, flips, local_size, patch_size, pool, patch_stride, query_stride: descriptor
            settings; ``None`` takes ``DEFAULT_SETTINGS[spatial_dims]``. ``flips`` applies to the global comparison.
        global_blur, local_blur: Gaussian sigma (grid pixels) applied before comparing, for tolerance to sub-pixel
            shifts and noise.
        min_structure: patches whose detrended standard deviation (normalised intensity) is below this are too
            flat to tell images apart and are ignored, in the index and in candidates.
        max_patches_per_image: most structured patches indexed per training image (bounds the index size).
        exact_limit: patch indexes with more rows than this are searched through an inverted file
            (:class:`PatchIndex`, ``nprobe`` clusters per query) instead of exhaustively.
        seed: for drawing the leave-one-out images.

    Raises:
        ValueError: for an empty training set, images of the wrong rank, or bad settings.
    """

    def __init__(
        self,
        training: Sequence[Any],
        names: Sequence[str] | None = None,
        spatial_dims: int | None = None,
        held_out: Sequence[Any] | None = None,
        thresholds: dict[str, float] | None = None,
        margin: float | dict[str, float] | None = None,
        quantile: float = 0.0,
        max_calibration: int = 50,
        global_size: int | None = None,
        max_shift: int | None = None,
        flips: bool = True,
        local_size: int | None = None,
        patch_size: int | None = None,
        pool: int | None = None,
        patch_stride: int | None = None,
        query_stride: int | None = None,
        global_blur: float = 1.0,
        local_blur: float = 1.0,
        min_structure: float = 0.02,
        max_patches_per_image: int = 256,
        exact_limit: int = 10_000,
        nprobe: int = 16,
        seed: int = 0,
    ) -> None:
        n = len(training)
        if n == 0:
            raise ValueError("the privacy audit needs at least one training image.")
        if names is not None and len(names) != n:
            raise ValueError(f"{len(names)} names for {n} training images.")
        margin = dict(DEFAULT_MARGIN) if margin is None else margin
        margin = margin if isinstance(margin, dict) else {"global": float(margin), "local": float(margin)}
        if set(margin) != {"global", "local"} or not all(0 < float(v) for v in margin.values()):
            raise ValueError(f"margin must be a positive number or {{'global': g, 'local': l}}, got {margin}.")
        if not 0 <= quantile <= 1:
            raise ValueError(f"quantile must lie in [0, 1], got {quantile}.")
        self.names = [str(x) for x in names] if names is not None else [f"training_{i}" for i in range(n)]
        first = training[0]
        self.spatial_dims = int(spatial_dims) if spatial_dims is not None else infer_spatial_dims(first)
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}.")
        given = {
            "global_size": global_size,
            "max_shift": max_shift,
            "local_size": local_size,
            "patch_size": patch_size,
            "pool": pool,
            "patch_stride": patch_stride,
            "query_stride": query_stride,
        }
        self.settings: dict[str, Any] = {
            k: int(v) if v is not None else DEFAULT_SETTINGS[self.spatial_dims][k] for k, v in given.items()
        }
        self.settings.update(
            flips=bool(flips),
            global_blur=float(global_blur),
            local_blur=float(local_blur),
            min_structure=float(min_structure),
            max_patches_per_image=int(max_patches_per_image),
        )
        s = self.settings
        if (
            min(s["pool"], s["patch_stride"], s["query_stride"]) < 1
            or s["max_shift"] < 0
            or s["global_size"] <= 2 * s["max_shift"]
            or s["patch_size"] % s["pool"]
            or not s["pool"] <= s["patch_size"] <= s["local_size"]
        ):
            raise ValueError(
                f"inconsistent audit settings {s}: strides and pool must be positive, patch_size a multiple of "
                "pool and at most local_size, and global_size larger than 2 * max_shift."
            )
        self.margin, self.quantile = {k: float(v) for k, v in margin.items()}, float(quantile)

        start = time.perf_counter()
        global_rows, local_rows, local_owner, local_corner = [], [], [], []
        self.skipped: list[str] = []
        for i in range(n):
            image = training[i] if i else first
            g, loc = self._features(image, s["patch_stride"], variants=False, name=self.names[i])
            if g is None:
                self.skipped.append(self.names[i])
                logger.warning("privacy audit: training image %s has no contrast and is not indexed.", self.names[i])
                window = s["global_size"] - 2 * s["max_shift"]
                global_rows.append(torch.zeros(window**self.spatial_dims, dtype=torch.float16))  # distance 1
                continue
            global_rows.append(g[0].half())
            desc, corners, structure = loc
            keep = torch.argsort(structure, descending=True)[: s["max_patches_per_image"]]
            local_rows.append(desc[keep].half())
            local_owner.append(torch.full((len(keep),), i, dtype=torch.int32))
            local_corner.append(corners[keep].to(torch.int16))
            if (i + 1) % 100 == 0:
                logger.info("privacy audit: indexed %d/%d training images", i + 1, n)
        if len(self.skipped) == n:
            raise ValueError("no training image has any contrast: nothing to audit against.")
        self._global = torch.stack(global_rows)
        k_dim = (s["patch_size"] // s["pool"]) ** self.spatial_dims
        rows = torch.cat(local_rows) if local_rows else torch.zeros(0, k_dim, dtype=torch.float16)
        self._local_owner = torch.cat(local_owner) if local_owner else torch.zeros(0, dtype=torch.int32)
        self._local_corner = torch.cat(local_corner) if local_corner else torch.zeros(0, self.spatial_dims)
        self._patch_index = PatchIndex(rows, self._local_owner, exact_limit=exact_limit, nprobe=nprobe, seed=seed)
        self._local = self._patch_index.rows  # the index's own (possibly reordered) copy: hold the rows once
        self.index_seconds = time.perf_counter() - start

        start = time.perf_counter()
        self.calibration = self._calibrate(training, held_out, thresholds, max_calibration, seed)
        self.calibration_seconds = time.perf_counter() - start
        self.thresholds: dict[str, float] = dict(self.calibration["thresholds"])
        self.num_checked = 0
        self.num_flagged = 0
        self.check_seconds = 0.0

    @classmethod
    def from_datalist(
        cls,
        datalist_path: str | os.PathLike,
        spatial_dims: int | None = None,
        key: str = "image",
        held_out: str | None = "validation",
        training_section: str = "training",
        transform: Callable | None = None,
        **kwargs: Any,
    ) -> PrivacyAudit:
        """Index the ``key`` images of a MONAI datalist's ``training_section``, reading them one at a time.

        Args:
            datalist_path: a datalist JSON, or a folder holding ``datalist.json`` (paths relative to it).
            spatial_dims: 2 or 3; default from the first image's rank (channel-first after loading).
            key: the datalist key of the image files.
            held_out: the datalist section of real images not used for training (calibration); when that section
                is absent or empty, or ``None``, the audit calibrates leave-one-out on the training images.
            training_section: the datalist section that was trained on.
            transform: applied to every loaded image (channel-first ``MetaTensor``) before indexing, e.g. the
                bundle's own preprocessing so that training images are compared in the generator's frame.
            kwargs: passed to :class:`PrivacyAudit`.
        """
        training = ImageFiles(datalist_files(datalist_path, training_section, key), transform)
        held = None
        if held_out is not None:
            files = datalist_files(datalist_path, held_out, key, allow_missing=True)
            held = ImageFiles(files, transform) if files else None
        if spatial_dims is None:
            spatial_dims = training[0].ndim - 1
        audit = cls(
            training, names=[p.name for p in training.paths], spatial_dims=spatial_dims, held_out=held, **kwargs
        )
        audit.calibration["held_out_files"] = [p.name for p in held.paths] if held is not None else []
        return audit

    def _features(
        self, image: Any, stride: int, variants: bool, name: str = "image"
    ) -> tuple[torch.Tensor | None, Any]:
        """Global descriptor(s) (all shifted/flipped variants when ``variants``) and structured patch descriptors
        every ``stride`` pixels; ``(None, None)`` for an image without contrast."""
        s = self.settings
        try:
            normalised = normalise_intensity(as_spatial(image, self.spatial_dims))
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from e
        if normalised is None:
            return None, None
        g = gaussian_blur(canonical_grid(normalised, s["global_size"])[0], s["global_blur"])
        global_desc = grid_variants(g, s["max_shift"], s["flips"] and variants, shifts=variants)
        local_grid, box = canonical_grid(normalised, s["local_size"])
        if s["local_blur"] > 0:
            local_grid = gaussian_blur(local_grid, s["local_blur"])
        desc, corners, structure = patch_descriptors(local_grid, s["patch_size"], stride, s["pool"], box)
        keep = structure >= s["min_structure"]
        return global_desc, (desc[keep], corners[keep], structure[keep])

    def _distances(self, image: Any, exclude: int | None = None, name: str = "image") -> dict[str, Any]:
        s = self.settings
        variants, loc = self._features(image, s["query_stride"], variants=True, name=name)
        result: dict[str, Any] = {
            "global_distance": None,
            "local_distance": None,
            "nearest_training": None,
            "nearest_training_local": None,
        }
        if variants is None:
            result["note"] = "no contrast: nothing to compare"
            return result
        mask = None
        if exclude is not None:
            mask = torch.zeros(self._global.shape[0], dtype=torch.bool)
            mask[exclude] = True
        dist, arg = nearest(variants, self._global, exclude=mask)
        v = int(torch.argmin(dist))
        if math.isfinite(float(dist[v])):
            result["global_distance"] = max(0.0, float(dist[v]))  # float16 rounding can dip below 0
            result["nearest_training"] = self.names[int(arg[v])]
            result["global_match"] = self._variant(v)
        desc, corners, _ = loc
        if desc.shape[0] and self._local.shape[0]:
            ldist, larg = self._patch_index.search(desc, exclude_owner=exclude)
            p = int(torch.argmin(ldist))
            if math.isfinite(float(ldist[p])):
                t = int(larg[p])
                result["local_distance"] = max(0.0, float(ldist[p]))
                result["nearest_training_local"] = self.names[int(self._local_owner[t])]
                result["local_match"] = {
                    "candidate_corner": corners[p].tolist(),
                    "training_corner": self._local_corner[t].tolist(),
                    "grid": s["local_size"],
                }
        else:
            result["note"] = "no structured patch: local distance not computed"
        return result

    def _variant(self, v: int) -> dict[str, Any]:
        """The flip axes and shift (global-grid pixels) of variant ``v`` of :func:`grid_variants`."""
        d, m = self.spatial_dims, self.settings["max_shift"]
        per_flip = (2 * m + 1) ** d
        flip = variant_flips(d, self.settings["flips"])[v // per_flip]
        return {
            "flip": list(flip),
            "shift": list(variant_offsets(m, d)[v % per_flip]),
            "grid": self.settings["global_size"],
        }

    def _calibrate(
        self,
        training: Sequence[Any],
        held_out: Sequence[Any] | None,
        thresholds: dict[str, float] | None,
        max_calibration: int,
        seed: int,
    ) -> dict[str, Any]:
        if thresholds is not None:
            missing = {"global", "local"} - set(thresholds)
            if missing:
                raise ValueError(f"thresholds needs 'global' and 'local' values; missing {sorted(missing)}.")
            return {"method": "given", "thresholds": {k: float(thresholds[k]) for k in ("global", "local")}}
        n = len(training)
        if held_out is not None and len(held_out):
            method = "held_out"
            results = [self._distances(held_out[i], name=f"held-out image {i}") for i in range(len(held_out))]
            used: list[Any] = list(range(len(held_out)))
        elif n - len(self.skipped) >= 2:
            method = "leave_one_out"
            candidates = [i for i in range(n) if self.names[i] not in self.skipped]
            rng = np.random.default_rng(seed)
            used = sorted(rng.choice(candidates, size=min(len(candidates), max_calibration), replace=False).tolist())
            results = [self._distances(training[i], exclude=i, name=self.names[i]) for i in used]
            used = [self.names[i] for i in used]
        else:
            return {
                "method": "default",
                "thresholds": dict(DEFAULT_THRESHOLDS),
                "note": "one training image and no held-out images: default thresholds (docs/privacy.md)",
            }
        out: dict[str, Any] = {"method": method, "num_images": len(results), "images": used, "thresholds": {}}
        for kind in ("global", "local"):
            values = [r[f"{kind}_distance"] for r in results if r[f"{kind}_distance"] is not None]
            out[f"{kind}_distances"] = values
            if values:
                out["thresholds"][kind] = self.margin[kind] * float(np.quantile(values, self.quantile))
            else:
                out["thresholds"][kind] = DEFAULT_THRESHOLDS[kind]
                out.setdefault("note", f"no {kind} calibration distance: default {kind} threshold")
        return out

    def check(self, image: Any, name: str = "image") -> dict[str, Any]:
        """Distances of one image to the training set and whether it is flagged as a (partial) copy.

        Args:
            image: array or tensor ``(C, *spatial)`` or ``(*spatial)``, any intensity range.
            name: used in error messages.

        Returns:
            ``global_distance``, ``local_distance`` (``None`` when the image has no contrast / no structured
            patch), ``nearest_training`` and ``nearest_training_local`` (training image names), ``flagged_global``,
            ``flagged_local``, ``flagged``, and where found ``global_match`` (flip axes and shift on the global
            grid) and ``local_match`` (patch corners on the local grid).

        Raises:
            ValueError: naming ``name``, when the image has the wrong rank or holds NaN/inf.
        """
        start = time.perf_counter()
        result = self._distances(image, name=name)
        g, loc = result["global_distance"], result["local_distance"]
        result["flagged_global"] = g is not None and g < self.thresholds["global"]
        result["flagged_local"] = loc is not None and loc < self.thresholds["local"]
        result["flagged"] = result["flagged_global"] or result["flagged_local"]
        self.num_checked += 1
        self.num_flagged += int(result["flagged"])
        self.check_seconds += time.perf_counter() - start
        return result

    def index_bytes(self) -> int:
        """Memory held by the index."""
        return sum(
            t.numel() * t.element_size() for t in (self._global, self._local, self._local_owner, self._local_corner)
        )

    def summary(self) -> dict[str, Any]:
        """The audit's set-up and what it has found so far (JSON-serialisable)."""
        cal = {k: v for k, v in self.calibration.items() if k != "thresholds"}
        return {
            "num_training": len(self.names),
            "skipped_training": list(self.skipped),
            "spatial_dims": self.spatial_dims,
            "thresholds": dict(self.thresholds),
            "margin": dict(self.margin),
            "quantile": self.quantile,
            "calibration": cal,
            "settings": dict(self.settings),
            "index_patches": int(self._local.shape[0]),
            "patch_search": "exact"
            if self._patch_index.centroids is None
            else (f"inverted file, {self._patch_index.centroids.shape[0]} clusters, nprobe {self._patch_index.nprobe}"),
            "index_megabytes": round(self.index_bytes() / 2**20, 3),
            "index_seconds": round(self.index_seconds, 3),
            "calibration_seconds": round(self.calibration_seconds, 3),
            "num_checked": self.num_checked,
            "num_flagged": self.num_flagged,
            "check_seconds_mean": round(self.check_seconds / self.num_checked, 4) if self.num_checked else None,
        }
