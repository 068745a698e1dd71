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
"""Privacy audit: flag generated images that copy a training image, whole or in part (``docs/privacy.md``).

Also a command: ``python -m monai_msgan.privacy --training DATASET --candidates FOLDER --output REPORT.json``.
"""

from __future__ import annotations

from monai_msgan.privacy.audit import (
    DEFAULT_MARGIN,
    DEFAULT_SETTINGS,
    DEFAULT_THRESHOLDS,
    ImageFiles,
    PrivacyAudit,
    datalist_files,
    load_image,
)

__all__ = [
    "PrivacyAudit",
    "DEFAULT_SETTINGS",
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLDS",
    "ImageFiles",
    "datalist_files",
    "load_image",
]
