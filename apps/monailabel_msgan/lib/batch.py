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
"""The app's batch action: N synthetic image+label pairs added to the datastore (``POST /batch/infer/synthesize``),
on MONAI Label's :class:`BatchInferTask` interface."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import LoadImage
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.tasks.batch_infer import BatchInferTask

import monai_msgan
from lib.infers import MAX_SEED, request_device
from lib.models import MAX_PAIRS, GeneratorModel, RequestError, request_int, resolve_model
from lib.synthesis import LoadedGenerator, generate, load_generator, model_grid, to_input_grid, write_samples
from lib.trainers import image_dimension
from monai_msgan.privacy import ImageFiles, PrivacyAudit

__all__ = ["MAX_REDRAWS", "SyntheticPairs", "make_pair", "model_training_images", "privacy_record"]

logger = logging.getLogger(__name__)

#: How many new seeds a pair whose image the privacy audit flags gets before it is dropped.
MAX_REDRAWS = 3
#: Redraw ``j`` of seed ``s`` uses ``(s + j * REDRAW_STRIDE) mod (MAX_SEED + 1)``, far from the seeds of other pairs.
REDRAW_STRIDE = 2**29


def model_training_images(model: GeneratorModel) -> list[str]:
    """The images the model was last trained on by the app (``train/datalist.json`` of its folder), [] if none."""
    datalist = model.path / "train" / "datalist.json"
    if not datalist.is_file():
        return []
    try:
        entries = json.loads(datalist.read_text())["training"]
        return [str(e["image"]) for e in entries if Path(e["image"]).is_file()]
    except (ValueError, KeyError, TypeError) as e:
        raise RequestError(f"the training datalist {datalist} of model '{model.name}' is unreadable: {e}") from e


def privacy_record(result: Mapping[str, Any], audit: PrivacyAudit, reference: str) -> dict[str, Any]:
    """The JSON-serialisable part of a :meth:`PrivacyAudit.check` result stored in the datastore info."""

    def num(v: Any) -> float | None:
        return None if v is None else round(float(v), 6)

    return {
        "flagged": bool(result["flagged"]),
        "flagged_global": bool(result["flagged_global"]),
        "flagged_local": bool(result["flagged_local"]),
        "global_distance": num(result["global_distance"]),
        "local_distance": num(result["local_distance"]),
        "nearest_training": result.get("nearest_training"),
        "thresholds": {k: num(v) for k, v in audit.thresholds.items()},
        "num_training": len(audit.names),
        "reference": reference,
    }


def make_pair(
    gen: LoadedGenerator, image_path: str, label_path: str, seed: int, folder: Path, name: str
) -> tuple[Path, Path]:
    """One synthetic pair from a labelled image: the image generated from its label (label models) or sketch
    (sketch models) with ``seed``, on the source's grid, and the label it was generated from. Both are written as
    new NIfTI files holding only the geometry and the voxels, never the source's header.

    This is where a bundle's ``synthesize`` workflow (sampling new label maps, then images from them) and the
    privacy audit of its outputs plug in when the bundles provide them; until then a pair reuses a datastore label.
    """
    image_file, label_file, _ = make_pair_checked(gen, image_path, label_path, [seed], folder, name)
    return image_file, label_file


def make_pair_checked(
    gen: LoadedGenerator,
    image_path: str,
    label_path: str,
    seeds: list[int],
    folder: Path,
    name: str,
    audit: PrivacyAudit | None = None,
) -> tuple[Path | None, Path | None, list[tuple[int, dict[str, Any] | None]]]:
    """:func:`make_pair` with the privacy audit: the image of each seed in ``seeds`` in turn is checked by
    ``audit`` (on the source's grid, as it is stored) until one is not flagged; that one is written. Returns the two
    files (None, None when every seed was flagged) and ``(seed, check result)`` of every seed tried."""
    image, grid, condition = model_grid(gen, image_path, label_path, drawn_sketch=True)
    tried: list[tuple[int, dict[str, Any] | None]] = []
    sample = None
    for seed in seeds:
        candidate = to_input_grid(gen, generate(gen, condition, [seed])[0], grid, image)
        result = audit.check(candidate.astype(np.float32), name=f"{name} (seed {seed})") if audit else None
        tried.append((seed, result))
        if result is None or not result["flagged"]:
            sample = candidate
            break
    if sample is None:
        return None, None, tried
    image_file = write_samples([sample], image, folder / f"{name}.nii.gz")
    label = np.asarray(LoadImage(image_only=True)(label_path))
    label_file = folder / f"{name}_label.nii.gz"
    write_samples([label.astype(np.int16)], image, label_file)
    return image_file, label_file, tried


def privacy_thresholds(request: Mapping[str, Any]) -> dict[str, float] | None:
    """The request's ``privacy_thresholds`` (``{"global": g, "local": l}``, distances in (0, 2]) or None.

    Raises:
        RequestError: 400 when it is not such an object.
    """
    value = request.get("privacy_thresholds")
    if value is None:
        return None
    try:
        out = {k: float(value[k]) for k in ("global", "local")}
        ok = set(value) == {"global", "local"} and all(0 < v <= 2 for v in out.values())
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise RequestError(
            f'\'privacy_thresholds\' must be {{"global": g, "local": l}} with distances in (0, 2], got {value!r}.'
        )
    return out


class SyntheticPairs(BatchInferTask):
    """Adds ``num_pairs`` synthetic image+label pairs to the datastore.

    Request (``POST /batch/infer/synthesize?images=labeled`` with the parameters as JSON body): ``generator`` (a
    sketch or label model), ``num_pairs`` (1 to :data:`~lib.models.MAX_PAIRS`), ``seed`` (pair ``k`` uses
    ``seed + k``), ``device``. The sources are the datastore's real (not synthetic) labelled images of the model's
    dimension among ``images``, taken in turn. Each pair is added as image ``synthetic_<model>_<seed>`` with its label
    (tag ``final``); both carry ``"synthetic": true``, the model and the seed in their datastore info. Ids that
    already exist are refused before anything is generated.

    Privacy: every generated image is checked, on the grid it is stored on, by a
    :class:`~monai_msgan.privacy.PrivacyAudit` of the model's training images (:func:`model_training_images`; the
    datastore's real images of its dimension for a model trained elsewhere), with the audit's calibrated thresholds
    or the request's ``privacy_thresholds``. A flagged image is made again with a new seed (up to
    :data:`MAX_REDRAWS` times, seed ``s + j * REDRAW_STRIDE``); a pair whose every seed is flagged is dropped
    (``dropped`` in the response). The check of the image that was kept (distances, thresholds, nearest training
    image, rejected seeds) goes into the ``privacy`` entry of the pair's datastore info.

    Args:
        models: the app's models by name.
    """

    def __init__(self, models: Mapping[str, GeneratorModel]) -> None:
        self.models = dict(models)

    def __call__(self, request: Mapping[str, Any], datastore: Datastore, infer: Callable) -> dict[str, Any]:
        if request.get("model") != "synthesize":
            raise RequestError(
                f"the batch action runs as /batch/infer/synthesize, not /batch/infer/{request.get('model')}.",
                status_code=404,
            )
        model = resolve_model(self.models, request)
        if model.condition == "none":
            raise RequestError(
                f"model '{model.name}' is unconditional: its samples come without a label; pairs need a sketch or "
                "label model."
            )
        num_pairs = request_int(request, "num_pairs", 1, 1, MAX_PAIRS)
        seed = request_int(request, "seed", 0, 0, MAX_SEED - num_pairs + 1)
        tag = DefaultLabelTag.FINAL.value
        allowed = set(self.get_images(request, datastore))
        sources = []
        for image_id in sorted(datastore.get_labeled_images()):
            if image_id not in allowed or datastore.get_image_info(image_id).get("synthetic"):
                continue
            path = datastore.get_image_uri(image_id)
            if image_dimension(path) == model.spatial_dims:
                label = datastore.get_label_uri(datastore.get_label_by_image_id(image_id, tag), tag)
                sources.append((path, label))
        if not sources:
            raise RequestError(
                f"no real labelled {model.spatial_dims}D images among the requested ones to make pairs from: label "
                "some (save a final label) first."
            )
        seeds = list(range(seed, seed + num_pairs))
        ids = [f"synthetic_{model.name}_{s:06d}" for s in seeds]
        taken = sorted(set(ids) & set(datastore.list_images()))
        if taken:
            raise RequestError(f"the datastore already has {taken}; choose another 'seed'.", status_code=409)
        gen = load_generator(model, request_device(request))
        t0 = time.perf_counter()
        thresholds = privacy_thresholds(request)
        audit, reference = self.privacy_audit(model, [path for path, _ in sources], thresholds)
        info = {"synthetic": True, "generator": f"monai-msgan {monai_msgan.__version__}", "model": model.name}
        added, used, dropped, rejected = [], [], [], []
        with tempfile.TemporaryDirectory(prefix="msgan_pairs_") as tmp:
            for k, (s, image_id) in enumerate(zip(seeds, ids)):
                image_path, label_path = sources[k % len(sources)]
                tries = [(s + j * REDRAW_STRIDE) % (MAX_SEED + 1) for j in range(MAX_REDRAWS + 1)]
                image_file, label_file, tried = make_pair_checked(
                    gen, image_path, label_path, tries, Path(tmp), image_id, audit
                )
                flagged = [seed for seed, result in tried if result is not None and result["flagged"]]
                rejected += flagged
                if image_file is None:
                    dropped.append(image_id)
                    logger.warning(f"dropped synthetic pair {image_id}: the privacy audit flagged seeds {flagged}")
                    continue
                seed_used, result = tried[-1]
                meta = {
                    **info,
                    "seed": seed_used,
                    "condition": model.condition,
                    "privacy": {**privacy_record(result, audit, reference), "rejected_seeds": flagged},
                }
                datastore.add_image(image_id, str(image_file), dict(meta))
                datastore.save_label(image_id, str(label_file), tag, dict(meta))
                added.append(image_id)
                used.append(seed_used)
                logger.info(f"added synthetic pair {image_id} ({k + 1}/{num_pairs})")
        return {
            "generator": model.name,
            "added": added,
            "seeds": used,
            "dropped": dropped,
            "rejected_seeds": rejected,
            "privacy": {**audit.summary(), "reference": reference},
            "sources": len(sources),
            "seconds": round(time.perf_counter() - t0, 2),
        }

    @staticmethod
    def privacy_audit(
        model: GeneratorModel, sources: list[str], thresholds: dict[str, float] | None = None
    ) -> tuple[PrivacyAudit, str]:
        """The :class:`PrivacyAudit` of the model's training images (those the app last trained it on), or of the
        datastore's real labelled images of its dimension (``sources``) for a model trained elsewhere; and which of
        the two it is (``"model training images"`` / ``"datastore images"``). ``thresholds`` replace the audit's
        calibrated ones."""
        training = model_training_images(model)
        reference = "model training images" if training else "datastore images"
        paths = training or sources
        try:
            audit = PrivacyAudit(
                ImageFiles(paths),
                names=[Path(p).name for p in paths],
                spatial_dims=model.spatial_dims,
                thresholds=thresholds,
            )
        except (ValueError, FileNotFoundError) as e:
            raise RequestError(f"the privacy audit of model '{model.name}' cannot index its {reference}: {e}") from e
        return audit, reference
