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
"""Generate samples with a synthesizer and write them as NIfTI + PNG preview, with a record of how."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import monai_msgan
from monai_msgan.data.io import NiftiStreamWriter, mid_planes, read_json, save_nifti, save_png_preview, write_json
from monai_msgan.synthesis.synthesizer import MultiScaleSynthesizer
from monai_msgan.utils.atomic import check_writable, remove_stale_temporaries, signals_raise
from monai_msgan.utils.checkpoints import NonFiniteError
from monai_msgan.utils.distributed import gather_to_first, rank_and_world, rank_barrier
from monai_msgan.utils.flags import ensure_bool
from monai_msgan.utils.scales import ensure_size

__all__ = ["SampleGeneration", "choose_output_buffer", "MEMORY_MODE_BYTES_PER_VOXEL"]

#: Host bytes per output voxel and channel that in-memory assembly needs at its peak: the output (4 bytes), the
#: coarser scale (up to 1 byte per output voxel, in 2D) and the conversion for writing (up to 4 bytes), rounded up.
MEMORY_MODE_BYTES_PER_VOXEL = 10
OUTPUT_BUFFERS = ("auto", "memory", "disk")


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16 * 2**30


def choose_output_buffer(
    output_buffer: str, output_size: Sequence[int], channels: int = 1, memory_budget: int | None = None
) -> str:
    """``"memory"`` or ``"disk"``: ``"auto"`` picks disk when in-memory assembly would need more than
    ``memory_budget`` bytes (default: a quarter of this machine's physical memory)."""
    if output_buffer not in OUTPUT_BUFFERS:
        raise ValueError(f"output_buffer must be one of {OUTPUT_BUFFERS}, got {output_buffer!r}.")
    if output_buffer != "auto":
        return output_buffer
    budget = _physical_memory() // 4 if memory_budget is None else memory_budget
    need = MEMORY_MODE_BYTES_PER_VOXEL * channels * int(np.prod(output_size))
    return "disk" if need > budget else "memory"


class _PlaneCollector:
    """Keeps, from streamed slabs, exactly the planes :func:`~monai_msgan.data.io.mid_planes` would show."""

    def __init__(self, size: Sequence[int]) -> None:
        self.size = tuple(size)
        self.parts: list[list[torch.Tensor]] = [[], [], []]
        self.axial: torch.Tensor | None = None

    def add(self, slab: torch.Tensor, start: int) -> None:
        img = slab[0]
        if len(self.size) == 2:
            self.parts[0].append(img.clone())
            return
        x, y, z = self.size
        if start <= z // 2 < start + img.shape[-1]:
            self.axial = img[:, :, z // 2 - start].clone()
        self.parts[1].append(img[:, y // 2, :].clone())
        self.parts[2].append(img[x // 2, :, :].clone())

    def planes(self) -> list[torch.Tensor]:
        if len(self.size) == 2:
            return [torch.cat(self.parts[0], dim=-1)]
        return [self.axial, torch.cat(self.parts[1], -1).flip(-1), torch.cat(self.parts[2], -1).flip(-1)]


class SampleGeneration:
    """Generates ``num_samples`` images and writes, for sample ``i`` (seed ``seed + i``):
    ``output_dir/<prefix>_<i>.nii.gz`` (intensities mapped from the model range ``[-1, 1]`` to ``output_range``,
    geometry from ``affine``), ``output_dir/<prefix>_<i>.png`` (8-bit preview) and, for the whole run,
    ``output_dir/<prefix>s.json`` (seeds, sizes, files, timings). Existing files are never replaced unless
    ``overwrite`` is set; all of them are checked before anything is generated.

    The record is rewritten after every finished sample (``"complete": false`` until the last), so a run that was
    killed part-way continues when started again with the same settings: recorded samples are kept, the others are
    (re)generated. Every image is checked to be finite before it is written (:class:`~monai_msgan.utils.NonFiniteError`
    naming the sample otherwise; nothing of it is written). Temporaries of killed runs are removed at start, and
    SIGTERM removes those of the running sample.

    ``roi_start`` and ``roi_size`` write only that region of each ``output_size`` image (e.g. a detail of a 4096³
    volume, or one machine's share of a large one): only the windows it needs are computed, the pixels equal those
    of the whole image, and the affine's origin moves to the region's first voxel, so the region lies where it
    would in the whole image.

    ``output_buffer`` chooses where the finished slabs of the finest scale go; both are the same assembly engine
    (:mod:`~monai_msgan.synthesis.assembly`) and give identical files. ``"memory"``: into RAM (about
    :data:`MEMORY_MODE_BYTES_PER_VOXEL` bytes per output voxel), then written. ``"disk"``: streamed straight into the
    NIfTI file, so host memory stays far below the image's size (slower: the file is compressed as it is written).
    ``"auto"`` takes disk when memory mode would need more than a quarter of the machine's RAM.

    Under ``torchrun`` (a process group initialised, e.g. by the bundle's ``multi_gpu_inference.json``), rank ``r`` of
    ``N`` makes samples ``r, r + N, ...`` into the same folder (same seeds and names as one process would use), and
    rank 0 writes the record of all samples once every rank is done.

    Args:
        synthesizer: the multi-scale synthesizer with trained weights.
        output_size: spatial size of each sample.
        output_dir: folder of the outputs (created if needed).
        affine: 4×4 NIfTI affine of the outputs (spacing, orientation, origin).
        num_samples: number of images.
        seed: seed of the first sample.
        output_range: intensities that the model range ``[-1, 1]`` maps to (values are clipped to it).
        output_dtype: NIfTI data type (``"float32"``, ``"int16"``, ``"uint16"``, ...); integers are rounded.
        prefix: file name prefix.
        preview_size: largest side of the PNG preview.
        preview_range: output intensities mapped to black and white in the preview (e.g. a CT display window);
            None = ``output_range``.
        overwrite: replace existing outputs.
        output_buffer: ``"auto"``, ``"memory"`` or ``"disk"`` (see above).
        condition_files: translation models: datalist entries whose conditions (sketches, edge maps, label maps)
            drive the samples; ``num_samples`` samples (seeds ``seed, seed + 1, ...``) are made from each, numbered
            in order. None = unconditional samples.
        condition_preprocessing: loads an entry of ``condition_files`` and returns a dict holding its
            ``condition_key`` at the output size (e.g. the training preprocessing, with ``EdgeMapd``).
        condition_key: the condition's key.
        label_key: label-map conditioning: the key of the integer label map that ``condition_preprocessing`` also
            returns (at the output size); it is written beside each sample as ``<prefix>_<i>_label.nii.gz`` with the
            sample's geometry, and the record lists ``image`` and ``label`` for each sample (a datalist entry).
            None = no label files.
        roi_start: first voxel of the region to generate; None (with ``roi_size`` None) = the whole image.
        roi_size: size of the region.
    """

    def __init__(
        self,
        synthesizer: MultiScaleSynthesizer,
        output_size: Sequence[int],
        output_dir: str | os.PathLike,
        affine: Any,
        num_samples: int = 1,
        seed: int = 0,
        output_range: Sequence[float] = (0.0, 1.0),
        output_dtype: str = "float32",
        prefix: str = "sample",
        preview_size: int = 2048,
        overwrite: bool = False,
        output_buffer: str = "auto",
        preview_range: Sequence[float] | None = None,
        condition_files: Sequence[dict] | None = None,
        condition_preprocessing: Callable | None = None,
        condition_key: str = "condition",
        label_key: str | None = None,
        roi_start: Sequence[int] | None = None,
        roi_size: Sequence[int] | None = None,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
        self.synthesizer = synthesizer
        self.output_size = ensure_size(list(output_size), synthesizer.spatial_dims, "output_size")
        synthesizer.scale_sizes(self.output_size)  # fail now on a size the model cannot make
        region = synthesizer.roi(self.output_size, roi_start, roi_size)  # fail now on a region outside
        self.roi_start = None if roi_start is None else [r.start for r in region]
        self.roi_size = None if roi_size is None else [r.stop - r.start for r in region]
        self.file_size = tuple(r.stop - r.start for r in region)
        self.output_dir = Path(output_dir)
        self.affine = np.asarray(affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {self.affine.shape}.")
        if self.roi_start is not None:  # the region's first voxel is the file's origin
            shift = np.zeros(4)
            shift[: len(self.roi_start)] = self.roi_start
            self.affine = self.affine.copy()
            self.affine[:3, 3] += self.affine[:3, :] @ shift
        self.samples_per_condition = int(num_samples)
        self.condition_files = None if condition_files is None else list(condition_files)
        if self.condition_files is not None:
            if not self.condition_files:
                raise ValueError("condition_files is empty: no conditions to translate.")
            if condition_preprocessing is None:
                raise ValueError("condition_files needs condition_preprocessing to load them.")
        self.condition_preprocessing = condition_preprocessing
        self.condition_key = condition_key
        if label_key is not None and self.condition_files is None:
            raise ValueError("label_key needs condition_files: the label maps that drive the samples.")
        self.label_key = label_key
        self.num_samples = self.samples_per_condition * (1 if condition_files is None else len(self.condition_files))
        self.seed = int(seed)
        self.output_range = (float(output_range[0]), float(output_range[1]))
        self.output_dtype = np.dtype(output_dtype)
        self.prefix = prefix
        self.preview_size = preview_size
        self.preview_range = self.output_range if preview_range is None else tuple(float(v) for v in preview_range)
        self.overwrite = ensure_bool(overwrite, "overwrite")
        out_channels = int(getattr(synthesizer.generator.base, "out_channels", 1))
        self.output_buffer = choose_output_buffer(output_buffer, self.file_size, out_channels)
        self.logger = logging.getLogger(__name__)

    def paths(self, i: int) -> tuple[Path, Path]:
        stem = self.output_dir / f"{self.prefix}_{i:03d}"
        return stem.with_name(stem.name + ".nii.gz"), stem.with_name(stem.name + ".png")

    def label_path(self, i: int) -> Path:
        """Where the label map of sample ``i`` is written (with ``label_key``)."""
        return self.output_dir / f"{self.prefix}_{i:03d}_label.nii.gz"

    @property
    def record_path(self) -> Path:
        return self.output_dir / f"{self.prefix}s.json"

    def to_output_range(self, image: torch.Tensor) -> torch.Tensor:
        """Map ``[-1, 1]`` to ``output_range`` in place and clip."""
        lo, hi = self.output_range
        image.add_(1.0).mul_((hi - lo) / 2.0).add_(lo).clamp_(min(lo, hi), max(lo, hi))
        if self.output_dtype.kind in "iu":
            image.round_()
        return image

    def condition_of(self, index: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The condition of condition file ``index`` at the output size, and its label map (with ``label_key``);
        ``(None, None)`` without condition files.

        Raises:
            ValueError: the preprocessing made no condition (or label map), or one of another size than the output.
        """
        if self.condition_files is None:
            return None, None
        entry = self.condition_files[index]
        item = self.condition_preprocessing(entry)
        keys = [self.condition_key] + ([self.label_key] if self.label_key else [])
        for key in keys:
            if not isinstance(item, Mapping) or key not in item:
                raise ValueError(f"the condition preprocessing of {entry} made no '{key}'.")
        cond = torch.as_tensor(item[self.condition_key], dtype=torch.float32)
        label = None if self.label_key is None else torch.as_tensor(item[self.label_key])
        for name, t in (("condition", cond), ("label map", label)):
            if t is not None and tuple(t.shape[1:]) != tuple(self.output_size):
                raise ValueError(
                    f"the {name} of {entry} has size {list(t.shape[1:])}, but output_size is "
                    f"{list(self.output_size)}; resize it in the preprocessing or set output_size to match."
                )
        return cond, label

    @staticmethod
    def check_finite(image: torch.Tensor, path: Path, seed: int) -> None:
        """Refuse an image (or a slab of one) holding NaN or infinite values before any of it is written to ``path``.

        Raises:
            NonFiniteError: naming the file and the seed.
        """
        if not bool(torch.isfinite(image).all()):
            raise NonFiniteError(
                f"{path.name} (seed {seed}) would hold NaN or infinite values; nothing of it was written. The "
                "generator weights or the condition are not finite (check the checkpoints in ckpt_dir)."
            )

    def stream_to(
        self, path: Path, seed: int, condition: torch.Tensor | None = None, overwrite: bool = False
    ) -> list[torch.Tensor]:
        """Generate one image straight into the NIfTI file ``path``, slab by slab (never whole in memory), each slab
        checked finite and mapped to the output range; returns the middle planes for the preview."""
        collector = _PlaneCollector(self.file_size)
        with NiftiStreamWriter(path, self.file_size, self.affine, self.output_dtype, overwrite) as writer:

            def sink(slab: torch.Tensor, start: int) -> None:
                self.check_finite(slab, path, seed)
                slab = self.to_output_range(slab)
                writer.write(slab[0])
                collector.add(slab, start)

            self.synthesizer.stream(self.output_size, sink, seed, condition, self.roi_start, self.roi_size)
        return collector.planes()

    def _settings(self) -> dict[str, Any]:
        return {
            "generator": f"monai-msgan {monai_msgan.__version__}",
            "output_size": list(self.output_size),
            "roi_start": self.roi_start,
            "roi_size": None if self.roi_start is None else list(self.file_size),
            "num_scales": self.synthesizer.num_scales,
            "scale_sizes": [list(s) for s in self.synthesizer.scale_sizes(self.output_size)],
            "overlap": self.synthesizer.overlap,
            "batch_invariant": self.synthesizer.batch_invariant,
            "patch_size": list(self.synthesizer.patch_size),
            "sw_batch_size": self.synthesizer.sw_batch_size,
            "device": str(self.synthesizer.device),
            "output_buffer": self.output_buffer,
            "output_range": list(self.output_range),
            "affine": self.affine.tolist(),
        }

    def _plan(self) -> list[int]:
        return [self.seed + i % self.samples_per_condition for i in range(self.num_samples)]

    def _unfinished(self) -> list[dict] | None:
        """The samples an interrupted run with the same settings recorded (None: no such run to continue)."""
        if self.overwrite or not self.record_path.is_file():
            return None
        try:
            record = read_json(self.record_path)
        except ValueError:
            return None
        if not isinstance(record, dict) or record.get("complete", True) or record.get("planned_seeds") != self._plan():
            return None
        keys = ("output_size", "roi_start", "roi_size", "num_scales", "output_range", "affine")
        same = {k: record.get(k) for k in keys}
        if same != {k: self._settings()[k] for k in same}:
            return None
        return [
            r for r in record.get("samples", []) if all((self.output_dir / r[k]).is_file() for k in ("nifti", "png"))
        ]

    def _write_record(self, records: list[dict], complete: bool, world_size: int = 1) -> None:
        extra = {"world_size": world_size} if world_size > 1 else {}
        write_json({**self._settings(), **extra, "planned_seeds": self._plan(), "complete": complete,
                    "samples": records}, self.record_path)  # fmt: skip

    def run(self) -> list[Path]:
        """Generate and write all samples (continuing an interrupted run; under torchrun this rank's share, rank 0
        writing the record); returns the NIfTI paths of the samples this process made or found."""
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"output_dir {self.output_dir}: it exists and is not a folder.")
        rank, world = rank_and_world()
        if rank == 0:
            remove_stale_temporaries(self.output_dir)
        done = self._unfinished() if world == 1 else None  # several ranks: no continuation (one record at the end)
        continuing = done is not None
        records = list(done or [])
        finished = {r["nifti"] for r in records}
        if not continuing:
            for i in range(self.num_samples):
                for p in self.paths(i):
                    check_writable(p, self.overwrite)
                if self.label_key is not None:
                    check_writable(self.label_path(i), self.overwrite)
            check_writable(self.record_path, self.overwrite)
        elif records:
            print(f"continuing {self.record_path}: {len(records)} of {self.num_samples} samples are done", flush=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        rank_barrier()  # every rank checked the outputs before any is written
        mine = list(range(rank, self.num_samples, world))
        with signals_raise():
            self._generate(mine, records, finished, overwrite=self.overwrite or continuing, world=world, rank=rank)
        if world > 1:
            gathered = gather_to_first(records)
            if gathered is not None:  # rank 0 writes the one record
                merged = sorted((r for part in gathered for r in part), key=lambda r: r["index"])
                self._write_record(merged, complete=len(merged) == self.num_samples, world_size=world)
        elif len(finished) == self.num_samples:  # all were recorded by the interrupted run
            self._write_record(records, complete=True)
        return [self.paths(i)[0] for i in (range(self.num_samples) if world == 1 else mine)]

    def _generate(
        self, indices: list[int], records: list[dict], finished: set[str], overwrite: bool, world: int, rank: int
    ) -> None:
        condition = label = None
        source_loaded = None
        for i in indices:
            source, k = divmod(i, self.samples_per_condition)
            seed = self.seed + k
            nii, png = self.paths(i)
            if nii.name in finished:
                continue
            if source != source_loaded:
                (condition, label), source_loaded = self.condition_of(source), source
            t0 = time.perf_counter()
            if self.output_buffer == "disk":
                planes = self.stream_to(nii, seed, condition, overwrite)
            else:
                image = self.synthesizer(self.output_size, seed, condition, self.roi_start, self.roi_size)
                self.check_finite(image, nii, seed)
                image = self.to_output_range(image)
                save_nifti(image[0], self.affine, nii, overwrite=overwrite, dtype=self.output_dtype)
                planes = mid_planes(image)
                del image
            save_png_preview(None, png, self.preview_range, self.preview_size, overwrite, planes=planes)
            seconds = time.perf_counter() - t0
            record = {"index": i, "seed": seed, "nifti": nii.name, "png": png.name, "seconds": round(seconds, 3)}
            if self.condition_files is not None:
                record["condition_index"] = source
            if world > 1:
                record["rank"] = rank
            if label is not None:
                if self.roi_start is not None:  # the label map of the region, on the region's grid
                    label = label[(slice(None), *(slice(a, a + n) for a, n in zip(self.roi_start, self.file_size)))]
                label_file = self.label_path(i)
                dtype = np.uint8 if 0 <= int(label.min()) and int(label.max()) <= 255 else np.int16
                save_nifti(label[0], self.affine, label_file, overwrite=overwrite, dtype=dtype)
                record.update({"image": nii.name, "label": label_file.name})
            records.append(record)
            records.sort(key=lambda r: r["index"])
            if world == 1:  # the record after every sample: an interrupted run continues from it
                self._write_record(records, complete=len(records) == self.num_samples)
            print(
                f"sample {i}: seed {seed}, {'x'.join(map(str, self.file_size))} in {seconds:.1f} s -> {nii}",
                flush=True,
            )
