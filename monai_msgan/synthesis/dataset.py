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
"""Synthetic datasets that can be shared: bulk generation into one self-describing folder, resumable and shardable.

Layout of a dataset folder::

    job.json                  what is being made (written once; every later run and shard must match it)
    images/<prefix>_00000.nii.gz   a sample (or .png, .dcm, or a folder of DICOM slices for a CT series)
    images/<prefix>_00000.json     its record, written last: a sample is complete when its record is there
    previews/<prefix>_00000.png    a small preview of each sample
    shards/shard_<i>_of_<n>.json   what each shard did (timing, privacy audit summary)
    datalist.json, manifest.json, README.md, preview.png   written by the merge, from what is on disk

Sample ``i`` belongs to shard ``i % n``; its seed is fixed by ``i`` (and, when the privacy filter rejects a sample,
by the attempt number), so any split over shards and restarts makes the same files.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import monai_msgan
from monai_msgan.data.dicom_writer import write_ct_series, write_radiograph_dicom
from monai_msgan.data.io import mid_planes, read_json, save_nifti, save_png_preview, write_json
from monai_msgan.privacy import PrivacyAudit
from monai_msgan.synthesis.generate import SampleGeneration
from monai_msgan.utils.atomic import atomic_path
from monai_msgan.utils.checkpoints import generator_path
from monai_msgan.utils.flags import ensure_bool

__all__ = ["SyntheticDataset", "merge_dataset", "resolve_shard", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("nifti", "png", "dicom")
JOB_FILE = "job.json"
IMAGES = "images"
PREVIEWS = "previews"
SHARDS = "shards"
LOCKS = ".locks"
MERGED_FILES = ("datalist.json", "manifest.json", "README.md", "preview.png")
PREVIEW_THUMBNAIL = 256
PANEL_COLUMNS = 4
SYNTHETIC_NOTICE = (
    "Every image in this dataset is synthetic: a generative model made it from random numbers. "
    "None is a scan of a person, and no file carries patient information."
)
_VERSION_PACKAGES = ("torch", "monai", "numpy", "nibabel", "pydicom", "highdicom", "SimpleITK", "pytorch-ignite")


def resolve_shard(shard: Sequence[int] | None = None) -> tuple[int, int]:
    """The shard ``(index, count)`` this process fills: ``shard`` if given, else torchrun's ``RANK``/``WORLD_SIZE``
    from the environment, else ``(0, 1)``.

    Raises:
        ValueError: for a shard index outside ``[0, count)``.
    """
    if shard is None:
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is None or world is None:
            return 0, 1
        index, count = int(rank), int(world)
        source = "RANK/WORLD_SIZE"
    else:
        if len(shard) != 2:
            raise ValueError(f"shard must be [index, count], got {list(shard)}.")
        index, count = (int(v) for v in shard)
        source = "shard"
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"{source} gives shard {index} of {count}; the index must be in [0, {count}).")
    return index, count


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "monai-msgan": str(monai_msgan.__version__)}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["platform"] = platform.platform()
    return out


def _jsonable(obj: Any) -> Any:
    """Config values as JSON: tensors and arrays as lists, devices and paths as strings."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


@contextlib.contextmanager
def _lock(path: Path, blocking: bool = True) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (released by the OS if the process dies, so never stale)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RuntimeError(f"{path} is locked: another process is running this shard of the dataset.") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_stale(folder: Path, stem: str) -> None:
    """Remove what a killed writer left of sample ``stem``: temporary files and folders ``.<stem>.*.tmp*``."""
    if not folder.is_dir():
        return
    for p in folder.glob(f".{stem}.*"):
        if ".tmp" in p.name[len(stem) + 2 :]:
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


class SyntheticDataset:
    """Generates a shareable synthetic dataset into ``generation.output_dir`` (see the module docstring for the
    layout), from the bundle's :class:`~monai_msgan.synthesis.SampleGeneration` (model, size, geometry, intensity
    range, seeds and conditions).

    Sample ``i`` is unconditional with seed ``seed + i`` or, with conditions, condition ``i // per_condition`` with
    seed ``seed + i % per_condition`` (as ``SampleGeneration`` numbers them). A sample the privacy filter rejects is
    made again with seed ``+ attempt * per_condition`` (attempt 1, 2, ...), so replacements never collide with
    another sample's seed and do not depend on the shard.

    Resuming: each sample is written atomically and its record last; a run skips the samples whose record is there
    and regenerates the others (an image without a record is an interrupted sample of the same job), after removing
    temporary files that a killed run left. ``job.json`` fixes what is being made: a run with a different model,
    configuration or number of samples is refused, unless ``overwrite`` (which starts the shard's samples over).

    Sharding: shard ``(i, n)`` makes the samples ``i, i + n, i + 2n, ...``; ``shard=None`` takes torchrun's
    ``RANK``/``WORLD_SIZE``. Any number of processes (or machines sharing the folder) fill it side by side; each
    shard may run in one process at a time (a lock file says so). When the last sample is on disk, the finishing
    process merges (:func:`merge_dataset`): ``datalist.json``, ``manifest.json``, ``README.md`` and ``preview.png``.

    Privacy: with ``privacy_audit`` each sample is compared with the training images through
    ``monai_msgan.privacy.PrivacyAudit`` (distances to the nearest training image, globally and by patch, and a
    flag); with ``privacy_filter`` flagged samples are dropped and made again with new seeds (up to
    ``privacy_max_attempts`` per sample). ``privacy_audit=None`` audits when ``training_datalist`` exists.

    Args:
        generation: the bundle's sample generation (its ``output_dir``, ``num_samples``, ``seed``, ``prefix``,
            ``affine``, ``output_range``, ``output_dtype``, ``preview_range``, conditions and ``overwrite`` are used).
        output_format: ``"nifti"`` (default), ``"png"`` (2D only, 16-bit greyscale spanning ``output_range``) or
            ``"dicom"`` (3D: a CT Image Storage series per sample; 2D: one Secondary Capture image).
        shard: ``[index, count]``, or None for the environment's ``RANK``/``WORLD_SIZE`` (one shard without them).
        ckpt_dir: the checkpoint folder; the SHA-256 of each scale's ``generator.pt`` goes into the manifest.
        config: the configuration values that made the dataset, recorded in the manifest (JSON-able values).
        training_datalist: the training datalist (MONAI format) of the model, for the privacy audit.
        privacy_audit: audit every sample (None = when ``training_datalist`` exists).
        privacy_filter: replace flagged samples by new ones.
        privacy_held_out: datalist key of held-out real images that calibrate the audit's threshold (used when the
            datalist has entries under it), None = the audit's default threshold.
        privacy_max_attempts: most attempts per sample with the filter on.
        description: one line on what made the dataset (card title and DICOM descriptions).
        dataset_licence: the licence of the dataset, for its card (None: the card says none was set).
        merge: merge when this run finds every sample on disk.
    """

    def __init__(
        self,
        generation: SampleGeneration,
        output_format: str = "nifti",
        shard: Sequence[int] | None = None,
        ckpt_dir: str | os.PathLike | None = None,
        config: Mapping[str, Any] | None = None,
        training_datalist: str | os.PathLike | None = None,
        privacy_audit: bool | None = None,
        privacy_filter: bool = False,
        privacy_held_out: str | None = "validation",
        privacy_max_attempts: int = 10,
        description: str = "synthetic images",
        dataset_licence: str | None = None,
        merge: bool = True,
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}.")
        self.generation = generation
        self.spatial_dims = len(generation.output_size)
        if output_format == "png" and self.spatial_dims != 2:
            raise ValueError("output_format 'png' writes 2D images only; use 'nifti' or 'dicom' for volumes.")
        if output_format != "nifti" and generation.output_buffer == "disk":
            raise ValueError(
                f"output_format {output_format!r} needs the image in memory, but output_buffer is 'disk' (chosen for "
                f"{list(generation.output_size)}); set --output_buffer memory or use output_format 'nifti'."
            )
        self.output_format = output_format
        self.output_dir = Path(generation.output_dir)
        self.shard = resolve_shard(shard)
        self.ckpt_dir = None if ckpt_dir is None else Path(ckpt_dir)
        self.config = _jsonable(dict(config or {}))
        self.training_datalist = None if training_datalist is None else Path(training_datalist)
        if privacy_audit is None:
            privacy_audit = self.training_datalist is not None and self.training_datalist.is_file()
            self.privacy_reason = "no training datalist of the model was found (training_datalist)"
        else:
            self.privacy_reason = "the privacy audit was switched off (privacy_audit false)"
        self.privacy_audit = ensure_bool(privacy_audit, "privacy_audit")
        self.privacy_filter = ensure_bool(privacy_filter, "privacy_filter")
        if self.privacy_filter and not self.privacy_audit:
            raise ValueError("privacy_filter needs the privacy audit: set privacy_audit true and a training_datalist.")
        if self.privacy_audit and (self.training_datalist is None or not self.training_datalist.is_file()):
            raise FileNotFoundError(
                f"privacy_audit needs the model's training datalist, but training_datalist={training_datalist} "
                "is not a file; pass --training_datalist or --privacy_audit false."
            )
        self.privacy_held_out = privacy_held_out
        if privacy_max_attempts < 1:
            raise ValueError(f"privacy_max_attempts must be at least 1, got {privacy_max_attempts}.")
        self.privacy_max_attempts = int(privacy_max_attempts)
        self.description = description
        self.dataset_licence = dataset_licence
        self.merge_when_complete = ensure_bool(merge, "merge")
        self._audit = None

    # ---------------------------------------------------------------- naming
    @property
    def num_samples(self) -> int:
        return self.generation.num_samples

    def stem(self, index: int) -> str:
        return f"{self.generation.prefix}_{index:05d}"

    def image_path(self, index: int) -> Path:
        """The sample's image: a file, or a folder of slices for a DICOM CT series."""
        suffix = {"nifti": ".nii.gz", "png": ".png", "dicom": ".dcm" if self.spatial_dims == 2 else ""}
        return self.output_dir / IMAGES / (self.stem(index) + suffix[self.output_format])

    def label_path(self, index: int) -> Path:
        """The label map of a label-conditioned sample (NIfTI, the image's grid and affine)."""
        return self.output_dir / IMAGES / f"{self.stem(index)}_label.nii.gz"

    def _write_label(self, index: int, label: torch.Tensor) -> Path:
        gen = self.generation
        if gen.roi_start is not None:  # the region's part of the map
            label = label[(slice(None), *(slice(a, a + n) for a, n in zip(gen.roi_start, gen.file_size)))]
        dtype = np.uint8 if 0 <= int(label.min()) and int(label.max()) <= 255 else np.int16
        path = self.label_path(index)
        save_nifti(label[0], gen.affine, path, overwrite=True, dtype=dtype)
        return path

    def record_path(self, index: int) -> Path:
        return self.output_dir / IMAGES / f"{self.stem(index)}.json"

    def seed(self, index: int, attempt: int = 0) -> int:
        per = self.generation.samples_per_condition
        return self.generation.seed + index % per + attempt * per

    def indices(self) -> list[int]:
        """The samples of this process's shard."""
        i, n = self.shard
        return list(range(i, self.num_samples, n))

    # ---------------------------------------------------------------- job
    def job(self) -> dict[str, Any]:
        """What is being made, without anything that depends on the shard or the run."""
        gen = self.generation
        synth = gen.synthesizer
        checkpoints = {}
        if self.ckpt_dir is not None:
            for s in range(synth.num_scales):
                p = generator_path(self.ckpt_dir, s)
                checkpoints[f"scale_{s}"] = _sha256(p) if p.is_file() else None
        spacing = np.linalg.norm(gen.affine[:3, : self.spatial_dims], axis=0)
        return {
            "description": self.description,
            "num_samples": self.num_samples,
            "seed": gen.seed,
            "samples_per_condition": gen.samples_per_condition,
            "num_conditions": None if gen.condition_files is None else len(gen.condition_files),
            "prefix": gen.prefix,
            "spatial_dims": self.spatial_dims,
            "output_size": list(gen.output_size),
            "spacing_mm": [round(float(s), 6) for s in spacing],
            "affine": gen.affine.tolist(),
            "output_format": self.output_format,
            "output_range": list(gen.output_range),
            "output_dtype": str(gen.output_dtype),
            "num_scales": synth.num_scales,
            "scale_sizes": [list(s) for s in synth.scale_sizes(gen.output_size)],
            "patch_size": list(synth.patch_size),
            "checkpoint_sha256": checkpoints,
            "config": self.config,
            "privacy": {
                "audit": self.privacy_audit,
                "filter": self.privacy_filter,
                "held_out": self.privacy_held_out,
                "max_attempts": self.privacy_max_attempts,
                "not_run_reason": None if self.privacy_audit else self.privacy_reason,
            },
            "dataset_licence": self.dataset_licence,
        }

    def _start_job(self) -> dict[str, Any]:
        """Create ``job.json`` or check that the folder holds the same job. Returns the job on disk."""
        job = self.job()
        job_id = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]
        path = self.output_dir / JOB_FILE
        if path.is_file():
            on_disk = read_json(path)
            if on_disk.get("job_id") == job_id:
                return on_disk
            if not self.generation.overwrite:
                raise FileExistsError(
                    f"{self.output_dir} holds another synthetic dataset (job {on_disk.get('job_id')}, {path}): the "
                    "model, configuration or number of samples differ. Choose another output_dir, or pass "
                    "--overwrite true to make this one there instead."
                )
        elif (
            self.output_dir.is_dir()
            and any(not p.name.startswith(".") for p in self.output_dir.iterdir())
            and not self.generation.overwrite
        ):
            raise FileExistsError(
                f"{self.output_dir} is not empty and holds no {JOB_FILE}: it is not a synthetic dataset folder. "
                "Choose another output_dir, or pass --overwrite true."
            )
        record = {
            "job_id": job_id,
            "dataset_uid": uuid.uuid4().hex,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "generator": f"monai-msgan {monai_msgan.__version__}",
            "software": _versions(),
            **job,
        }
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.generation.overwrite:
            write_json(record, path)
        else:  # create only if absent: of shards starting at the same moment, the first one's file stays
            fd, tmp = tempfile.mkstemp(prefix=f".{JOB_FILE}.", suffix=".tmp", dir=self.output_dir)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(record, indent=2) + "\n")
                os.chmod(tmp, 0o644)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        on_disk = read_json(path)
        if on_disk.get("job_id") != job_id:
            raise FileExistsError(f"{path} was written by another job at the same time; run again.")
        return on_disk

    # ---------------------------------------------------------------- records
    def complete(self, index: int, job_id: str) -> bool:
        """Whether sample ``index`` of job ``job_id`` is on disk: its record, and the files it lists with their
        sizes."""
        return _check_record(self.output_dir, self.record_path(index), job_id) is not None

    # ---------------------------------------------------------------- privacy
    def _privacy(self):
        if self._audit is None:
            datalist = read_json(self.training_datalist)
            held_out = self.privacy_held_out if datalist.get(self.privacy_held_out or "") else None
            self._audit = PrivacyAudit.from_datalist(
                str(self.training_datalist), spatial_dims=self.spatial_dims, key="image", held_out=held_out
            )
            self._training_files = _datalist_files(self.training_datalist)
        return self._audit

    def _check_privacy(self, image: torch.Tensor) -> dict[str, Any]:
        """The audit's result for one candidate (``(C, *spatial)`` in the output range), training file names
        replaced by their index."""
        result = _jsonable(dict(self._privacy().check(image.detach().cpu().numpy())))
        result["flagged"] = bool(result.get("flagged"))
        return _scrub(result, self._training_files)

    # ---------------------------------------------------------------- writing
    def _write_image(self, index: int, image: torch.Tensor, patient_id: str) -> list[Path]:
        """Write the sample (``(C, *spatial)``, output range) in the chosen format; returns the files written."""
        gen = self.generation
        path = self.image_path(index)
        array = image[0].detach().cpu().numpy()
        if self.output_format == "nifti":
            return [save_nifti(array, gen.affine, path, overwrite=True, dtype=gen.output_dtype)]
        if self.output_format == "png":
            from PIL import Image

            lo, hi = gen.output_range
            u16 = np.clip(np.rint((array - lo) / (hi - lo) * 65535.0), 0, 65535).astype(np.uint16)
            with atomic_path(path) as tmp:  # (x, y) -> rows = y, columns = x
                Image.fromarray(np.ascontiguousarray(u16.T)).save(tmp, format="PNG")
            return [path]
        spacing = np.linalg.norm(gen.affine[:3, : self.spatial_dims], axis=0)
        kwargs = {
            "patient_name": self.stem(index),
            "patient_id": patient_id,
            "value_range": gen.output_range,
            "description": self.description,
            "overwrite": True,
        }
        if self.spatial_dims == 2:
            return [write_radiograph_dicom(array, spacing, path, **kwargs)]
        return write_ct_series(array, gen.affine, path, window=gen.preview_range, **kwargs)

    def _generate(self, index: int, seed: int, condition) -> tuple[torch.Tensor | None, list, Path | None]:
        """One candidate: the image in the output range (None when streamed to disk), its preview planes, and the
        streamed file (disk buffer only)."""
        gen = self.generation
        if gen.output_buffer == "disk":
            path = self.image_path(index)
            path.unlink(missing_ok=True)
            planes = gen.stream_to(path, seed, condition, overwrite=True)
            image = None
            if self.privacy_audit:
                import nibabel as nib

                image = torch.as_tensor(np.asarray(nib.load(path).dataobj, dtype=np.float32))[None]
            return image, planes, path
        image = gen.synthesizer(gen.output_size, seed, condition, gen.roi_start, gen.roi_size)
        gen.check_finite(image, self.image_path(index), seed)
        image = gen.to_output_range(image)
        return image, mid_planes(image), None

    def make_sample(self, index: int, job: Mapping[str, Any]) -> dict[str, Any]:
        """Generate, audit and write sample ``index``; its record is written last. Returns the record."""
        gen = self.generation
        images_dir = self.output_dir / IMAGES
        stem = self.stem(index)
        _remove_stale(images_dir, stem)
        _remove_stale(self.output_dir / PREVIEWS, stem)
        self.record_path(index).unlink(missing_ok=True)  # a record of another job (overwrite)
        source, _ = divmod(index, gen.samples_per_condition)
        condition, label = gen.condition_of(source)
        rejected = []
        timings = {"generate": 0.0, "privacy": 0.0, "write": 0.0}
        for attempt in range(self.privacy_max_attempts if self.privacy_filter else 1):
            seed = self.seed(index, attempt)
            t0 = time.perf_counter()
            image, planes, streamed = self._generate(index, seed, condition)
            timings["generate"] += time.perf_counter() - t0
            privacy: dict[str, Any] = {"status": "not run"}
            if self.privacy_audit:
                t0 = time.perf_counter()
                privacy = {"status": "run", **self._check_privacy(image)}
                timings["privacy"] += time.perf_counter() - t0
                if privacy["flagged"] and self.privacy_filter:
                    rejected.append({"seed": seed, **{k: v for k, v in privacy.items() if k != "status"}})
                    if streamed is not None:
                        streamed.unlink(missing_ok=True)
                    print(f"sample {index}: seed {seed} flagged by the privacy audit; trying another seed", flush=True)
                    continue
            break
        else:
            raise RuntimeError(
                f"sample {index}: the privacy audit flagged all {self.privacy_max_attempts} attempts (seeds "
                f"{[r['seed'] for r in rejected]}): the model reproduces its training images; see docs/privacy.md."
            )
        t0 = time.perf_counter()
        if streamed is not None:
            files = [streamed]
        else:
            patient_id = f"SYN-{job['dataset_uid'][:8]}-{index:05d}"
            files = self._write_image(index, image, patient_id)
        if label is not None:  # label-map conditioning: the map the image was made from, on the image's grid
            files.append(self._write_label(index, label))
        preview = self.output_dir / PREVIEWS / f"{stem}.png"
        save_png_preview(None, preview, gen.preview_range, PREVIEW_THUMBNAIL, overwrite=True, planes=planes)
        timings["write"] += time.perf_counter() - t0
        record = {
            "job_id": job["job_id"],
            "index": index,
            "seed": seed,
            "attempts": len(rejected) + 1,
            "condition_index": source if gen.condition_files is not None else None,
            "image": self.image_path(index).relative_to(self.output_dir).as_posix(),
            **({} if label is None else {"label": self.label_path(index).relative_to(self.output_dir).as_posix()}),
            "files": {
                p.relative_to(self.output_dir).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                for p in files
            },
            "preview": preview.relative_to(self.output_dir).as_posix(),
            "seconds": {k: round(v, 3) for k, v in timings.items()},
            "privacy": privacy if not rejected else {**privacy, "rejected": rejected},
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(record, self.record_path(index))
        return record

    def run(self) -> Path | None:
        """Make this shard's missing samples, then merge when every sample is on disk.

        Returns:
            the dataset's ``datalist.json`` when merged, else None (other shards are still missing).
        """
        i, n = self.shard
        job = self._start_job()
        todo = [k for k in self.indices() if self.generation.overwrite or not self.complete(k, job["job_id"])]
        t_start = time.perf_counter()
        with _lock(self.output_dir / LOCKS / f"shard_{i}_of_{n}.lock", blocking=False):
            done_before = len(self.indices()) - len(todo)
            print(
                f"shard {i} of {n}: {len(self.indices())} samples, {done_before} already on disk, {len(todo)} to make "
                f"-> {self.output_dir}",
                flush=True,
            )
            for k in todo:
                record = self.make_sample(k, job)
                print(
                    f"sample {k}: seed {record['seed']}, {sum(record['seconds'].values()):.1f} s -> {record['image']}",
                    flush=True,
                )
            summary = {
                "shard": [i, n],
                "job_id": job["job_id"],
                "samples": len(self.indices()),
                "made_in_last_run": len(todo),
                "seconds_last_run": round(time.perf_counter() - t_start, 3),
                "device": str(self.generation.synthesizer.device),
                "privacy_audit_summary": _scrub(_jsonable(self._audit.summary()), self._training_files)
                if self._audit is not None
                else None,
            }
            shard_file = self.output_dir / SHARDS / f"shard_{i}_of_{n}.json"
            if todo or not shard_file.is_file():  # a run with nothing to do keeps the account of the one that did
                write_json(summary, shard_file)
        if not self.merge_when_complete:
            return None
        missing = [k for k in range(self.num_samples) if not self.complete(k, job["job_id"])]
        if missing:
            print(
                f"shard {i} of {n} done; {len(missing)} samples of other shards still missing (merge when they are, "
                "or run 'merge').",
                flush=True,
            )
            return None
        return merge_dataset(self.output_dir)

    def merge(self) -> Path:
        """Merge the folder (see :func:`merge_dataset`)."""
        return merge_dataset(self.output_dir)


# -------------------------------------------------------------------- helpers shared by runs and the merge
def _datalist_files(path: Path) -> dict[str, str]:
    """Every image a datalist lists, as ``{path as written, and its file name: "<section>[<index>]"}``, to
    recognise them in audit results (a file name shared by several entries maps to all of them, ``a|b``)."""
    data = read_json(path)
    paths, names = {}, {}
    for section, entries in data.items():
        if isinstance(entries, list):
            for k, entry in enumerate(entries):
                if isinstance(entry, Mapping) and isinstance(entry.get("image"), str):
                    label = f"{section}[{k}]"
                    paths[entry["image"]] = label
                    names.setdefault(Path(entry["image"]).name, []).append(label)
    return {**{name: "|".join(labels) for name, labels in names.items()}, **paths}


def _scrub(obj: Any, files: Mapping[str, str]) -> Any:
    """Replace any datalist file name in an audit result by its place in the datalist (``training[3]``): a shared
    dataset must not carry the names of the patients' files."""
    if isinstance(obj, Mapping):
        return {k: _scrub(v, files) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v, files) for v in obj]
    if isinstance(obj, str):
        return files.get(obj) or files.get(Path(obj).name) or obj
    return obj


def _check_record(root: Path, record_path: Path, job_id: str) -> dict[str, Any] | None:
    """The record if it belongs to ``job_id`` and every file it lists is there with its size, else None."""
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return None
    if not isinstance(record, dict) or record.get("job_id") != job_id:
        return None
    for rel, info in record.get("files", {}).items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != info.get("bytes"):
            return None
    return record


def _panel(previews: Sequence[Path], path: Path) -> Path | None:
    """The first previews tiled in a grid, as one PNG."""
    from PIL import Image

    tiles = [Image.open(p).convert("L") for p in previews if p.is_file()]
    if not tiles:
        return None
    w, h = max(t.width for t in tiles), max(t.height for t in tiles)
    cols = min(PANEL_COLUMNS, len(tiles))
    rows = -(-len(tiles) // cols)
    panel = Image.new("L", (cols * w, rows * h))
    for k, t in enumerate(tiles):
        panel.paste(t, ((k % cols) * w, (k // cols) * h))
    with atomic_path(path) as tmp:
        panel.save(tmp, format="PNG")
    return path


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def _fmt(values: Sequence[float]) -> str:
    return " × ".join(f"{v:g}" for v in values)


def _card(job: Mapping[str, Any], samples: list[dict], privacy: dict, panel: Path | None) -> str:
    """The dataset card (README.md) of a merged folder."""
    n = len(samples)
    fmt = {"nifti": "NIfTI (.nii.gz)", "png": "16-bit greyscale PNG", "dicom": "DICOM"}[job["output_format"]]
    if job["output_format"] == "dicom":
        fmt += " (one CT Image Storage series per sample)" if job["spatial_dims"] == 3 else " (Secondary Capture)"
    seconds = [sum(s["seconds"].values()) for s in samples]
    unit = "pixels" if job["spatial_dims"] == 2 else "voxels"
    stored = {
        "nifti": f"{job['output_dtype']} values",
        "png": "mapped to 0..65535",
        "dicom": "stored values mapped back by Rescale Slope/Intercept",
    }[job["output_format"]]
    conditions = (
        f" (conditions: {job['num_conditions']}, {job['samples_per_condition']} samples each)"
        if job["num_conditions"]
        else ""
    )
    checkpoints = ", ".join(f"{k} `{v[:16] if v else 'missing'}…`" for k, v in job["checkpoint_sha256"].items())
    lines = [
        f"# Synthetic dataset: {n} {job['description']}",
        "",
        f"**{SYNTHETIC_NOTICE}**",
        "",
        f"Generated by {job['generator']} (https://github.com/monai-msgan/monai-msgan) on {job['created'][:10]}.",
        "",
        "## Contents",
        "",
        f"- {n} images, {fmt}, in `images/` (named by sample index); `datalist.json` lists them for MONAI "
        "(`monai.data.load_decathlon_datalist`, key `training`).",
        f"- Size {_fmt(job['output_size'])} {unit}, spacing {_fmt(job['spacing_mm'])} mm, intensities in "
        f"[{job['output_range'][0]:g}, {job['output_range'][1]:g}] ({stored}).",
        "- `manifest.json`: every sample's seed, condition (by index), timings and privacy result; the model's "
        "checkpoints (SHA-256 per scale), the configuration and the software versions.",
        "- `previews/`: a small preview of each sample; `preview.png`: the first of them side by side.",
        "",
        "## How it was made",
        "",
        f"A multi-scale GAN ({job['num_scales']} scales, {' → '.join(_fmt(s) for s in job['scale_sizes'])}, "
        f"patches of {_fmt(job['patch_size'])}) turned random noise into each image; sample *i* has seed "
        f"{job['seed']} + *i*"
        + conditions
        + (
            f". {sum(s['attempts'] > 1 for s in samples)} samples were made again by the privacy filter"
            if job["privacy"]["filter"]
            else ""
        )
        + ". Generation took "
        f"{sum(seconds):.1f} s in all ({(sum(seconds) / max(n, 1)):.1f} s per sample).",
        "",
        "Checkpoints (SHA-256): " + (checkpoints or "not recorded") + ".",
        "",
        "## Privacy audit",
        "",
    ]
    if privacy["status"] == "run":
        lines += [
            f"Every sample was compared with the model's training images (distance to the nearest one, globally and "
            f"by patch). Flagged as possible copies: {privacy['flagged']} of {n} kept samples"
            + (f"; {privacy['rejected']} candidates were flagged and replaced" if job["privacy"]["filter"] else "")
            + ". Per-sample distances are in `manifest.json`.",
        ]
        for summary in privacy.get("audit_summaries", [])[:1]:
            cal = summary.get("calibration", {})
            lines += [
                "",
                "Thresholds: "
                + ", ".join(f"{k} {_num(v)}" for k, v in (summary.get("thresholds") or {}).items())
                + f" (calibration: {cal.get('method', 'not recorded')}"
                + (f" on {cal['num_images']} image(s)" if "num_images" in cal else "")
                + f"; {summary.get('num_training', '?')} training image(s) indexed).",
            ]
    else:
        lines += [
            "Not run: " + privacy["reason"] + ". Nothing here shows that the samples are not copies of training "
            "images; run the audit (`python -m monai_msgan.privacy`) before sharing.",
        ]
    lines += ["", "## Preview", ""]
    lines += [f"![the first samples]({panel.name})" if panel else "(no preview)", ""]
    licence = job.get("dataset_licence")
    lines += [
        "## Licence",
        "",
        f"{licence}."
        if licence
        else "No licence was set (`--dataset_licence`). The images come from a model trained "
        "on real images whose terms may apply: set a licence that those terms allow before sharing.",
        "",
        "## Intended use",
        "",
        "Research and development (training and testing of image analysis methods, teaching). Not for diagnosis or "
        "any clinical decision. " + SYNTHETIC_NOTICE,
        "",
    ]
    return "\n".join(lines)


def merge_dataset(output_dir: str | os.PathLike) -> Path:
    """Write one ``datalist.json``, ``manifest.json``, ``README.md`` (dataset card) and ``preview.png`` for a
    dataset folder, from the records on disk (any number of shards and restarts).

    Safe to run while nothing is writing, and again at any time: it only reads the samples.

    Returns:
        the path of ``datalist.json``.

    Raises:
        FileNotFoundError: when the folder holds no ``job.json``.
        ValueError: naming the missing or incomplete samples.
    """
    root = Path(output_dir)
    if not (root / JOB_FILE).is_file():
        raise FileNotFoundError(f"{root / JOB_FILE} does not exist: {root} is not a synthetic dataset folder.")
    with _lock(root / LOCKS / "merge.lock"):
        job = read_json(root / JOB_FILE)
        prefix, n = job["prefix"], int(job["num_samples"])
        samples, missing = [], []
        for k in range(n):
            record = _check_record(root, root / IMAGES / f"{prefix}_{k:05d}.json", job["job_id"])
            (samples.append(record) if record is not None else missing.append(k))
        if missing:
            raise ValueError(
                f"{root}: {len(missing)} of {n} samples are missing or incomplete (indices {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}); run the synthesize command (each shard) again to make them."
            )
        for name in MERGED_FILES:  # what a merge killed half-way left
            for p in root.glob(f".{name}.*.tmp*"):
                p.unlink(missing_ok=True)
        datalist = {"training": [{k: s[k] for k in ("image", "label") if k in s} for s in samples]}
        audited = [s for s in samples if s["privacy"].get("status") == "run"]
        if audited and len(audited) == n:
            privacy = {
                "status": "run",
                "flagged": sum(bool(s["privacy"]["flagged"]) for s in samples),
                "rejected": sum(len(s["privacy"].get("rejected", [])) for s in samples),
            }
        else:
            reason = job["privacy"]["not_run_reason"] or f"only {len(audited)} of {n} samples were audited"
            privacy = {"status": "not run", "reason": reason}
        shards = [read_json(p) for p in sorted((root / SHARDS).glob("shard_*_of_*.json"))]
        shards = [s for s in shards if s.get("job_id") == job["job_id"]]
        privacy["audit_summaries"] = [s["privacy_audit_summary"] for s in shards if s.get("privacy_audit_summary")]
        manifest = {
            "dataset": {
                "synthetic": True,
                "statement": SYNTHETIC_NOTICE,
                **{k: v for k, v in job.items() if k not in ("config", "software")},
                "privacy_audit": privacy,
                "config": job["config"],
                "software": job["software"],
                "shards": shards,
                "merged": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            },
            "samples": [{k: v for k, v in s.items() if k != "job_id"} for s in samples],
        }
        panel = _panel([root / s["preview"] for s in samples[: 4 * PANEL_COLUMNS]], root / "preview.png")
        write_json(manifest, root / "manifest.json")
        with atomic_path(root / "README.md") as tmp:
            tmp.write_text(_card(job, samples, privacy, panel), encoding="utf-8")
        write_json(datalist, root / "datalist.json")
    print(f"merged {n} samples: {root / 'datalist.json'}, manifest.json, README.md", flush=True)
    return root / "datalist.json"
