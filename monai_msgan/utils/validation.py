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
"""Checks made before any work starts: options by type and range (naming the option), the sizes of a multi-scale
configuration, and the sizes of a dataset's images against it; every violation is reported at once."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monai_msgan.utils.atomic import Terminated, signals_raise
from monai_msgan.utils.scales import SCALE_FACTOR

__all__ = [
    "ConfigurationError",
    "arg_type",
    "run_command",
    "ensure_int",
    "ensure_number",
    "image_spatial_size",
    "training_violations",
    "dataset_size_violations",
]


class ConfigurationError(ValueError):
    """A configuration that cannot work; the message lists every violation found."""

    def __init__(self, violations: Sequence[str], what: str = "the configuration") -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"{what} has {len(self.violations)} problem(s); nothing was started:\n{lines}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def ensure_number(
    value: Any, name: str, minimum: float | None = None, maximum: float | None = None, integer: bool = False,
    exclusive_minimum: bool = False, exclusive_maximum: bool = False,
) -> int | float:  # fmt: skip
    """``value`` as an int (``integer``) or a finite float within the given range.

    Text from a command line is parsed (``"3"``, ``"0.5"``); an integer option refuses ``1.5`` and ``"abc"``.

    Raises:
        ValueError: naming the option, its value and the accepted range.
    """
    kind = "an integer" if integer else "a number"
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = int(value) if integer else float(value)
        except ValueError:
            raise ValueError(f"option {name} must be {kind}, got {value!r}.") from None
    if not _is_number(parsed) or (isinstance(parsed, float) and not math.isfinite(parsed)):
        raise ValueError(f"option {name} must be {kind}, got {value!r}.")
    if integer:
        if isinstance(parsed, float) and not parsed.is_integer():
            raise ValueError(f"option {name} must be {kind}, got {value!r}.")
        parsed = int(parsed)
    low_bad = minimum is not None and (parsed <= minimum if exclusive_minimum else parsed < minimum)
    high_bad = maximum is not None and (parsed >= maximum if exclusive_maximum else parsed > maximum)
    if low_bad or high_bad:
        lo = "" if minimum is None else f"{'>' if exclusive_minimum else '>='} {minimum}"
        hi = "" if maximum is None else f"{'<' if exclusive_maximum else '<='} {maximum}"
        raise ValueError(f"option {name} must be {kind} {' and '.join(x for x in (lo, hi) if x)}, got {value!r}.")
    return parsed


def ensure_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within ``[minimum, maximum]`` (see :func:`ensure_number`)."""
    return int(ensure_number(value, name, minimum, maximum, integer=True))


def arg_type(integer: bool = False, minimum: float | None = None, maximum: float | None = None, **kwargs: Any):
    """An ``argparse`` ``type=`` that checks type and range; argparse then names the option in its error
    (``argument --seed: must be an integer >= 0, got '1.5'``)."""

    def parse(text: str) -> int | float:
        try:
            return ensure_number(text, "", minimum, maximum, integer=integer, **kwargs)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).replace("option  ", "")) from None

    parse.__name__ = "integer" if integer else "number"
    return parse


def image_spatial_size(source: Any) -> tuple[int, ...] | None:
    """Spatial size of an image given as a channel-first array/tensor or a file (NIfTI header, or SimpleITK's
    header-only reading for other formats); None when it cannot be told without loading it.

    Raises:
        ValueError: naming the file when its header cannot be read.
    """
    shape = getattr(source, "shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape[1:])
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(source)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            shape = nib.load(path).shape
            return tuple(int(s) for s in shape if s > 1) or tuple(int(s) for s in shape)
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return tuple(int(s) for s in reader.GetSize() if s > 1)
    except Exception as e:
        raise ValueError(f"{path}: cannot read the image header: {e}") from e


def _size_list(value: Any, spatial_dims: int, name: str, problems: list[str]) -> tuple[int, ...] | None:
    if value is None:
        return None
    seq = [value] * spatial_dims if _is_number(value) else value
    try:
        out = tuple(int(v) for v in seq)
        ok = all(_is_number(v) and float(v).is_integer() for v in seq)
    except (TypeError, ValueError):
        ok, out = False, ()
    if not ok or len(out) != spatial_dims or any(v < 1 for v in out):
        problems.append(f"{name} must be {spatial_dims} positive integers, got {value!r}.")
        return None
    return out


def training_violations(
    spatial_dims: int,
    num_scales: int,
    image_size: Sequence[int] | None,
    patch_size: Sequence[int] | int,
    base_patch_size: Sequence[int] | int | None = None,
    base_divisor: int = 1,
    patch_divisor: int = 1,
    options: dict[str, Any] | None = None,
) -> list[str]:
    """Every size/scale/patch constraint of a multi-scale training configuration that ``image_size`` etc. break.

    Args:
        spatial_dims: 2 or 3.
        num_scales: scales, the base included.
        image_size: size of the finest scale (the preprocessed training image).
        patch_size: patch size of the patch scales.
        base_patch_size: patch size of a patch-wise base, or None.
        base_divisor: the base size must be divisible by this (the U-Net's ``size_divisor``).
        patch_divisor: patch sizes must be divisible by this (the patch generator's ``size_divisor``).
        options: ``name -> (value, minimum)`` of integer options (one value or one per scale) to check.

    Returns:
        the violations, as sentences naming the option; empty when the configuration fits.
    """
    problems: list[str] = []
    for name, (value, minimum) in (options or {}).items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            try:
                ensure_int(v, name, minimum)
            except ValueError as e:
                problems.append(str(e))
                break
    if not isinstance(num_scales, int) or num_scales < 1:
        problems.append(f"num_scales must be an integer >= 1, got {num_scales!r}.")
        return problems
    size = _size_list(image_size, spatial_dims, "image_size", problems)
    patch = _size_list(patch_size, spatial_dims, "patch_size", problems) if num_scales > 1 else None
    base_patch = _size_list(base_patch_size, spatial_dims, "base_patch_size", problems)
    if patch is not None and patch_divisor > 1 and any(p % patch_divisor for p in patch):
        problems.append(f"patch_size {list(patch)} must be divisible by {patch_divisor} (the patch generator's "
                        "downsampling).")  # fmt: skip
    if size is None:
        return problems
    factor = SCALE_FACTOR ** (num_scales - 1)
    if any(s % (factor * base_divisor) for s in size):
        problems.append(
            f"image_size {list(size)} must be divisible by {factor * base_divisor} ({num_scales} scales of "
            f"x{SCALE_FACTOR} and a base divisible by {base_divisor}); for example "
            f"{[max(factor * base_divisor, s // (factor * base_divisor) * factor * base_divisor) for s in size]}."
        )
        return problems
    sizes = [tuple(s // SCALE_FACTOR ** (num_scales - 1 - k) for s in size) for k in range(num_scales)]
    if patch is not None:
        for k in range(1, num_scales):
            if any(p > s for p, s in zip(patch, sizes[k])):
                problems.append(
                    f"patch_size {list(patch)} is larger than scale {k} ({list(sizes[k])} of image_size "
                    f"{list(size)}); use patches of at most {list(sizes[1])} or fewer scales."
                )
                break
    if base_patch is not None and any(p > s for p, s in zip(base_patch, sizes[0])):
        problems.append(f"base_patch_size {list(base_patch)} is larger than the base scale {list(sizes[0])}.")
    return problems


def dataset_size_violations(
    files: Sequence[dict], key: str, spatial_dims: int, minimum: Sequence[int], limit: int = 20
) -> list[str]:
    """The datalist entries whose image under ``key`` has the wrong number of dimensions or a side smaller than
    ``minimum`` (read from file headers; nothing is loaded), as sentences naming the file, its size and the minimum.
    At most ``limit`` are listed, then a count of the rest."""
    problems: list[str] = []
    for i, entry in enumerate(files):
        source = entry.get(key) if isinstance(entry, dict) else None
        name = source if isinstance(source, (str, os.PathLike)) else f"training entry {i}"
        try:
            size = image_spatial_size(source)
        except ValueError as e:
            problems.append(str(e))
            continue
        if size is None:
            continue
        if len(size) != spatial_dims:
            problems.append(f"{name}: image of size {list(size)} is not {spatial_dims}D.")
        elif any(s < m for s, m in zip(size, minimum)):
            problems.append(
                f"{name}: image of size {list(size)} is smaller than the minimum {list(minimum)} (the base scale of "
                "this configuration); it would be learned from an upsampled image."
            )
    if len(problems) > limit:
        problems = [*problems[:limit], f"... and {len(problems) - limit} more image(s)."]
    return problems


def run_command(work: Callable[[], int]) -> int:
    """Run a command-line tool's ``work`` and turn what can go wrong into one line on stderr and an exit code:
    bad input and I/O faults (disk full, permission denied, read-only output) exit 2, SIGTERM 143 and Ctrl-C 130,
    after the temporaries have been removed (no traceback)."""
    try:
        with signals_raise():
            return work()
    except (ValueError, OSError) as e:  # FileNotFoundError, FileExistsError, PermissionError, ... are OSErrors
        described = isinstance(e, OSError) and e.errno is not None and e.strerror and e.filename is None
        print(f"error: {e.strerror if described else e}", file=sys.stderr)
        return 2
    except Terminated as e:
        print(f"error: {e}; temporary files were removed, nothing was written.", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("error: interrupted; temporary files were removed, nothing was written.", file=sys.stderr)
        return 130
