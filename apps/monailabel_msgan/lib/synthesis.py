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
"""Generation in the geometry of the image a user is looking at.

A request's image goes through the model's own preprocessing (the bundle's ``preprocessing``, which resizes or
resamples it onto the model's grid and, for sketch models, computes its edge map), with MONAI's metadata kept so that
the model grid's affine is known. Samples are generated on that grid with the project's
:class:`~monai_msgan.synthesis.MultiScaleSynthesizer` and resampled back onto the input's grid (its shape and
affine), so the result overlays the input in any viewer.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms import EnsureTyped, LoadImage, SpatialResample

from lib.models import GeneratorModel, RequestError
from monai_msgan.data.io import save_nifti

__all__ = ["LoadedGenerator", "generate", "load_generator", "model_grid", "resample", "to_input_grid", "write_samples"]


class LoadedGenerator:
    """A model's synthesizer with its trained weights, its preprocessing and the intensity range of its outputs.

    Args:
        model: the model folder.
        device: where to generate.
    """

    def __init__(self, model: GeneratorModel, device: torch.device) -> None:
        # a long-lived server: let the C library give memory back after each request (see reuse_host_memory)
        parser = model.parser("infer", {"device": f"$torch.device('{device}')", "reuse_host_memory": False})
        self.model = model
        self.synthesizer = parser.get_parsed_content("synthesizer")
        self.synthesizer.generator.load_checkpoints(model.ckpt_dir)
        self.synthesizer.generator.eval()
        self.preprocessing = parser.get_parsed_content("preprocessing")
        self.condition_key = parser.get_parsed_content("condition_key")
        self.output_range = [float(v) for v in parser.get_parsed_content("generation#output_range")]
        self.output_dtype = np.dtype(parser.get_parsed_content("generation#output_dtype"))


_cache: dict[tuple[str, str], tuple[tuple, LoadedGenerator]] = {}
_cache_lock = threading.Lock()


def load_generator(model: GeneratorModel, device: torch.device) -> LoadedGenerator:
    """The model's :class:`LoadedGenerator`, reloaded whenever training has written new checkpoints.

    Raises:
        RequestError: 409 when the checkpoints do not fit the model's configs.
    """
    files = [model.ckpt_dir / f"scale_{s}" / "generator.pt" for s in range(model.num_scales)]
    stamp = tuple(f.stat().st_mtime_ns for f in files)
    key = (str(model.path), str(device))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None or cached[0] != stamp:
            try:
                _cache[key] = (stamp, LoadedGenerator(model, device))
            except (ValueError, FileNotFoundError) as e:  # e.g. checkpoints of other network settings
                raise RequestError(f"model '{model.name}' cannot be loaded: {e}", status_code=409) from e
        return _cache[key][1]


def resample(
    src: torch.Tensor, src_affine: Any, dst_affine: Any, dst_shape: Sequence[int], mode: str = "bilinear"
) -> torch.Tensor:
    """Resample a channel-first image from one grid onto another (voxels outside ``src`` become 0).

    The voxel-to-voxel transform is computed from the 4x4 world affines, so 2D images in any plane (a radiograph's
    coronal affine maps its second axis to the world's z) work as well as volumes; 2D grids must lie in one plane.
    """
    a_src = to_affine_nd(3, torch.as_tensor(src_affine, dtype=torch.float64)).numpy()
    a_dst = to_affine_nd(3, torch.as_tensor(dst_affine, dtype=torch.float64)).numpy()
    voxels = np.linalg.solve(a_dst, a_src)  # src voxel -> dst voxel
    dims = len(dst_shape)
    if dims == 2:
        voxels = voxels[np.ix_([0, 1, 3], [0, 1, 3])]
    out = SpatialResample(mode=mode, padding_mode="zeros")(
        MetaTensor((src.as_tensor() if isinstance(src, MetaTensor) else torch.as_tensor(src)).float(), affine=voxels),
        dst_affine=torch.eye(dims + 1, dtype=torch.float64),
        spatial_size=list(dst_shape),
    )
    return torch.as_tensor(out)


def _load(path: str, what: str) -> MetaTensor:
    try:
        return LoadImage(image_only=True, ensure_channel_first=True)(path)
    except Exception as e:
        raise RequestError(f"cannot read the {what} {path}: {e}") from e


def model_grid(
    gen: LoadedGenerator, image_path: str, label_path: str | None = None, drawn_sketch: bool = False
) -> tuple[MetaTensor, MetaTensor, torch.Tensor | None]:
    """The input image, its model grid (the preprocessed image, with its affine) and the condition on that grid.

    Args:
        gen: the loaded model.
        image_path: the image in the datastore (or uploaded).
        label_path: its label map or drawn sketch, when there is one.
        drawn_sketch: sketch models: condition on the sketch in ``label_path`` (translate) instead of the edge map
            of the image (synthesize).

    Raises:
        RequestError: 400 for an image of the wrong dimension, a missing or empty label/sketch or a label of
            another shape than the image.
    """
    model = gen.model
    image = _load(image_path, "image")
    if image.ndim - 1 != model.spatial_dims:
        raise RequestError(
            f"model '{model.name}' makes {model.spatial_dims}D images, but the image {image_path} is "
            f"{image.ndim - 1}D (shape {list(image.shape[1:])})."
        )
    needs_label = model.condition == "label" or drawn_sketch
    label = None
    if needs_label:
        if not label_path:
            what = "label map" if model.condition == "label" else "sketch"
            raise RequestError(
                f"model '{model.name}' needs a {what} of the image {image_path}: draw one and save it as its label, "
                "or upload it as 'label' with the request."
            )
        label = _load(label_path, "label")
        if tuple(label.shape[1:]) != tuple(image.shape[1:]):
            raise RequestError(
                f"the label {label_path} has shape {list(label.shape[1:])}, but its image {image_path} has "
                f"{list(image.shape[1:])}."
            )
        if not bool((label != 0).any()):
            raise RequestError(f"the label {label_path} is empty: nothing to condition the model '{model.name}' on.")
    entry: dict[str, Any] = {"image": image_path}
    if model.condition == "label":
        entry["label"] = label_path
    item: Any = entry
    # the bundle's preprocessing, keeping MONAI's metadata (its EnsureTyped drops it) to know the model grid's affine
    try:
        for transform in gen.preprocessing.transforms:
            if not isinstance(transform, EnsureTyped):
                item = transform(item)
    except Exception as e:
        if model.condition != "label":
            raise
        # a label map the model's label layer cannot encode (values outside its mapping or classes): the input's fault;
        # MONAI wraps a transform's error ("applying transform ..."), so report the original one
        cause: BaseException = e
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise RequestError(
            f"model '{model.name}' cannot use the label map {label_path} of the image {image_path}: "
            f"{type(cause).__name__}: {cause}"
        ) from e
    grid = item["image"]
    if not isinstance(grid, MetaTensor) or list(grid.shape[1:]) != model.image_size:
        raise RuntimeError(
            f"the preprocessing of model '{model.name}' made an image of shape {list(grid.shape)}, not "
            f"[C, {model.image_size}] with its affine."
        )
    condition = None
    if model.condition == "sketch" and drawn_sketch:
        on_grid = resample(label, label.affine, grid.affine, model.image_size, mode="nearest")
        condition = (on_grid > 0).float()
        if not bool(condition.any()):
            raise RequestError(f"the sketch {label_path} lies outside the field of view of model '{model.name}'.")
    elif model.condition != "none":
        if gen.condition_key not in item:
            raise RuntimeError(f"the preprocessing of model '{model.name}' made no '{gen.condition_key}'.")
        condition = torch.as_tensor(item[gen.condition_key]).float()
    return image, grid, condition


def generate(gen: LoadedGenerator, condition: torch.Tensor | None, seeds: Sequence[int]) -> list[torch.Tensor]:
    """One sample per seed on the model grid, in the model's output range (``[C, *image_size]``, float)."""
    lo, hi = gen.output_range
    out = []
    with torch.no_grad():
        for seed in seeds:
            sample = gen.synthesizer(gen.model.image_size, seed=int(seed), condition=condition)
            out.append(sample.float().add_(1.0).mul_((hi - lo) / 2.0).add_(lo).clamp_(min(lo, hi), max(lo, hi)))
    return out


def to_input_grid(gen: LoadedGenerator, sample: torch.Tensor, grid: MetaTensor, image: MetaTensor) -> np.ndarray:
    """Resample a sample from the model grid onto the input's grid; voxels outside the model's field of view get
    the lower end of the output range (black / air). Returns the spatial array (channel dropped)."""
    lo, hi = gen.output_range
    out = resample(sample - lo, grid.affine, image.affine, image.shape[1:]).add_(lo).clamp_(min(lo, hi), max(lo, hi))
    if gen.output_dtype.kind in "iu":
        out = out.round_()
    return out[0].numpy().astype(gen.output_dtype)


def write_samples(samples: Sequence[np.ndarray], image: MetaTensor, path: str | Path | None = None) -> Path:
    """Write samples as one NIfTI in the input's geometry: one sample as an image of the input's shape, several
    along the fourth NIfTI axis (2D images get a third axis of size 1). Only the geometry comes from the input.
    ``path`` None = a new temporary file."""
    if len(samples) == 1:
        array = samples[0]
    else:
        array = np.stack(samples, axis=-1)
        if image.ndim - 1 == 2:
            array = array[:, :, None, :]
    if path is None:
        with tempfile.NamedTemporaryFile(prefix="msgan_", suffix=".nii.gz", delete=False) as f:
            path = f.name
        overwrite = True  # the empty file just made for it
    else:
        overwrite = False
    affine = to_affine_nd(3, torch.as_tensor(image.affine, dtype=torch.float64)).numpy()
    return save_nifti(array, affine, path, overwrite=overwrite)
