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
"""Boolean options that may arrive as text from the command line."""

from __future__ import annotations

from typing import Any

__all__ = ["ensure_bool"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", "none", "null", ""}


def ensure_bool(value: Any, name: str) -> bool:
    """``value`` as a bool. ``python -m monai.bundle run ... --overwrite false`` hands over the *string* ``"false"``
    (Fire only parses ``False``), which is truthy; this reads such strings by their meaning instead.

    Raises:
        ValueError: naming the option, for text that is not a yes/no word.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return bool(value)
