"""Make services/labcommon importable (natively and in the image, it sits next to this folder)."""

import pathlib
import sys

_COMMON = pathlib.Path(__file__).resolve().parent.parent / "labcommon"
if str(_COMMON) not in sys.path:
    sys.path.insert(0, str(_COMMON))
