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
"""Reading 2D X-rays from DICOM, PNG/JPEG/TIFF or NIfTI, and turning them into normalised NIfTI training data."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monai_msgan.data.datalist import split_validation, unique_names
from monai_msgan.data.io import radiograph_affine, save_nifti, write_json
from monai_msgan.utils.atomic import check_writable, staged_folder

__all__ = [
    "XRayImage",
    "XRAY_MODALITIES",
    "read_xray",
    "normalise_intensity",
    "find_images",
    "prepare_xrays",
    "write_radiograph",
    "check_no_overlap",
    "content_digest",
]

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: DICOM modalities of projection radiography: computed and digital radiography, mammography, radiographic imaging,
#: fluoroscopy, angiography, intra-oral and panoramic X-ray.
XRAY_MODALITIES = ("CR", "DX", "MG", "RG", "RF", "XA", "IO", "PX", "DF")
#: Smallest side (pixels) of an image prepare_xrays accepts by default.
MIN_SIZE = 8


@dataclass
class XRayImage:
    """A radiograph as ``(rows, columns)`` float32, its pixel spacing in mm (row, column) if known, and its source."""

    pixels: np.ndarray
    spacing: tuple[float, float] | None
    source: Path
    modality: str | None = None


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_dicom(path: Path) -> bool:
    if _suffix(path) in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _spacing(values) -> tuple[float, float] | None:
    try:
        row, col = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def _read_dicom(path: Path) -> XRayImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
        raw = ds.pixel_array
    except Exception as e:
        raise ValueError(f"{path}: cannot read DICOM pixel data: {e}") from e
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if not photometric.startswith("MONOCHROME"):
        raise ValueError(f"{path}: photometric interpretation {photometric}; a greyscale X-ray is expected.")
    if raw.ndim != 2:
        raise ValueError(f"{path}: pixel data has shape {raw.shape}; a single-frame 2D X-ray is expected.")
    pixels = apply_modality_lut(raw, ds).astype(np.float64)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        # apply_voi_lut uses the first VOI LUT if there is one, else the first window
        pixels = apply_voi_lut(pixels, ds).astype(np.float64)
    if photometric == "MONOCHROME1":  # high values are dark: invert so bone is bright
        pixels = pixels.max() + pixels.min() - pixels
    spacing = _spacing(ds.get("ImagerPixelSpacing")) or _spacing(ds.get("PixelSpacing"))
    modality = str(ds.get("Modality", "") or "").strip().upper() or None
    return XRayImage(pixels.astype(np.float32), spacing, path, modality)


def _read_raster(path: Path) -> XRayImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                im = im.convert("L")
            pixels = np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: cannot read image: {e}") from e
    if pixels.ndim != 2:
        raise ValueError(f"{path}: image has shape {pixels.shape}; a 2D greyscale X-ray is expected.")
    return XRayImage(pixels, None, path)


def _read_nifti(path: Path) -> XRayImage:
    import nibabel as nib

    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:
        raise ValueError(f"{path}: cannot read NIfTI: {e}") from e
    zooms = img.header.get_zooms()
    keep = [i for i, s in enumerate(data.shape) if s > 1]
    if len(keep) != 2:
        raise ValueError(
            f"{path}: NIfTI of shape {data.shape} has {len(keep)} non-singleton dims; a 2D X-ray is expected "
            "(3D CT volumes go through prepare_ct.py)."
        )
    data = data.reshape([data.shape[i] for i in keep])
    # stored (columns, rows), MONAI/NIfTI style
    spacing = _spacing([zooms[keep[1]], zooms[keep[0]]]) if len(zooms) > max(keep) else None
    return XRayImage(np.ascontiguousarray(data.T), spacing, path)


def read_xray(path: str | os.PathLike) -> XRayImage:
    """Read one radiograph.

    - DICOM: the modality LUT (rescale slope/intercept) and the first VOI LUT or window are applied, and
      MONOCHROME1 images are inverted, so bone is bright in every output.
    - PNG/JPEG/TIFF: 8- or 16-bit greyscale; colour images are converted to luminance.
    - NIfTI: a 2D image (singleton dims allowed), stored as (columns, rows).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the file, when it cannot be read or is not a 2D greyscale image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file.")
    if _is_dicom(path):
        image = _read_dicom(path)
    elif _suffix(path) in RASTER_SUFFIXES:
        image = _read_raster(path)
    elif _suffix(path) in NIFTI_SUFFIXES:
        image = _read_nifti(path)
    else:
        raise ValueError(
            f"{path}: unsupported file type; expected DICOM, {', '.join(RASTER_SUFFIXES + NIFTI_SUFFIXES)}."
        )
    if min(image.pixels.shape) < 2 or not np.isfinite(image.pixels).all():
        raise ValueError(f"{path}: image of shape {image.pixels.shape} is empty or holds non-finite values.")
    return image


def normalise_intensity(pixels: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Map the ``lower``..``upper`` percentiles to 0..1 and clip (robust to burnt-in text and collimator edges).

    Raises:
        ValueError: when the image is constant.
    """
    lo, hi = np.percentile(pixels, [lower, upper])
    if hi <= lo:
        lo, hi = float(pixels.min()), float(pixels.max())
    if hi <= lo:
        raise ValueError("the image is constant; nothing to learn from it.")
    return np.clip((pixels - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def write_radiograph(
    pixels: np.ndarray, spacing: Sequence[float] | None, path: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write a ``(rows, columns)`` radiograph as a 2D NIfTI in (columns, rows) layout with a coronal affine."""
    sp = (1.0, 1.0) if spacing is None else (float(spacing[1]), float(spacing[0]))
    return save_nifti(np.ascontiguousarray(pixels.T), radiograph_affine(sp), path, overwrite=overwrite)


def find_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand folders (non-recursively, sorted) into their image files; files are kept as given.

    Raises:
        FileNotFoundError: for a missing path.
        ValueError: for a folder without images, or when nothing was given.
    """
    if not inputs:
        raise ValueError("no input given.")
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p
                for p in item.iterdir()
                if p.is_file()
                and not p.name.startswith(".")
                and (_suffix(p) in DICOM_SUFFIXES + RASTER_SUFFIXES + NIFTI_SUFFIXES or _is_dicom(p))
            )
            if not found:
                raise ValueError(f"{item}: the folder holds no DICOM, PNG/JPEG/TIFF or NIfTI images.")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item} does not exist.")
    return files


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", *NIFTI_SUFFIXES, *DICOM_SUFFIXES, *RASTER_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def content_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and values: the same image read from a copy (or another format holding
    the same pixels) gives the same digest."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype}|{array.shape}|".encode())
    h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def check_no_overlap(train: dict, validation: dict) -> None:
    """Refuse an input that is both a training and a validation item (a train/validation leak).

    Args:
        train: ``{source path: content digest}`` of the training items.
        validation: the same for the validation items.

    Raises:
        ValueError: naming both files, when a resolved path or a content digest is in both.
    """
    by_path = {Path(p).resolve(): p for p in train}
    by_digest = {d: p for p, d in train.items()}
    for p, d in validation.items():
        if Path(p).resolve() in by_path:
            raise ValueError(
                f"{p} is both a training and a validation input (as {by_path[Path(p).resolve()]}): a train/validation "
                "leak. Give each file to one of --input and --validation only."
            )
        if d in by_digest:
            raise ValueError(
                f"{p} (validation) has the same content as {by_digest[d]} (training): a copy of one image in both "
                "sets is a train/validation leak. Remove one of them."
            )


def prepare_xrays(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    validation: Sequence[str | os.PathLike] = (),
    val_fraction: float = 0.1,
    seed: int = 0,
    lower_percentile: float = 0.5,
    upper_percentile: float = 99.5,
    overwrite: bool = False,
    allow_non_xray: bool = False,
    min_size: int = MIN_SIZE,
) -> dict[str, list[dict[str, str]]]:
    """Turn radiographs into normalised NIfTI (``output_dir/images/<name>.nii.gz``, intensities in [0, 1], bone
    bright) and ``output_dir/datalist.json`` in MONAI's format, with paths relative to ``output_dir``.

    Args:
        inputs: files or folders of training (and, without ``validation``, validation) images.
        validation: files or folders used for validation only; when given, no random split is made.
        val_fraction: fraction of ``inputs`` drawn (with ``seed``) for validation when ``validation`` is empty;
            at least one image always stays in training.
        seed: seed of the split.
        lower_percentile: intensity percentile mapped to 0.
        upper_percentile: intensity percentile mapped to 1.
        overwrite: replace existing outputs.
        allow_non_xray: accept DICOMs whose modality is not one of :data:`XRAY_MODALITIES` (e.g. CT or MR slices).
        min_size: smallest accepted side in pixels.

    Everything is read and checked first (unreadable files, non-X-ray modalities, constant or too small images,
    an image in both training and validation by path or content); the outputs are built in a hidden folder beside
    ``output_dir`` and moved into place at the end, so a failure at any point leaves no partial dataset.

    Returns:
        the datalist.

    Raises:
        ValueError / FileNotFoundError / FileExistsError: naming the offending input.
        OSError: naming the output, when it cannot be written (disk full, permission denied, read-only).
    """
    output_dir = Path(output_dir)
    if not 0 <= lower_percentile < upper_percentile <= 100:
        raise ValueError(
            f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower_percentile} and {upper_percentile}."
        )
    train_files = find_images(inputs)
    val_files = find_images(validation) if validation else []
    if not validation:
        train_files, val_files = split_validation(train_files, val_fraction, seed)
    datalist_path = check_writable(output_dir / "datalist.json", overwrite)
    # Read everything first: a bad file stops the run before anything is written.
    images = {f: read_xray(f) for f in [*train_files, *val_files]}
    if not allow_non_xray:
        for f, image in images.items():
            if image.modality is not None and image.modality not in XRAY_MODALITIES:
                raise ValueError(
                    f"{f}: DICOM modality {image.modality} is not an X-ray modality ({', '.join(XRAY_MODALITIES)}); "
                    "CT volumes go through prepare_ct.py. Pass --allow-non-xray to use it anyway."
                )
    digests = {f: content_digest(image.pixels) for f, image in images.items()}
    check_no_overlap({f: digests[f] for f in train_files}, {f: digests[f] for f in val_files})
    names = {f: f"images/{name}.nii.gz" for f, name in zip(images, unique_names(_stem(f) for f in images))}
    for f in names:
        check_writable(output_dir / names[f], overwrite)
    normalised = {}
    for f, image in images.items():  # a constant image stops the run here, before anything is written
        try:
            normalised[f] = normalise_intensity(image.pixels, lower_percentile, upper_percentile)
        except ValueError as e:
            raise ValueError(f"{f}: {e}") from e
    small = [
        f"{f} ({'x'.join(map(str, images[f].pixels.shape))})" for f in images if min(images[f].pixels.shape) < min_size
    ]
    if small:
        raise ValueError(f"image(s) too small: {', '.join(small)}; the minimum side is {min_size} pixels (--min-size).")
    datalist = {
        "training": [{"image": names[f]} for f in train_files],
        "validation": [{"image": names[f]} for f in val_files],
    }
    with staged_folder(output_dir, overwrite) as stage:
        for f, pixels in normalised.items():
            write_radiograph(pixels, images[f].spacing, stage / names[f])
        write_json(datalist, stage / datalist_path.name)
    return datalist
