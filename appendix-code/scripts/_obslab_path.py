"""Make ``import obslab`` work from a checkout or the unzipped appendix without installing.

Installed (``pip install -e .`` or the bundled wheel) wins; otherwise the library is looked for
in the repository's ``src/`` or next to these scripts (``lib/``, where the zip build puts it).
"""

import sys
from pathlib import Path

try:
    import obslab  # noqa: F401
except ModuleNotFoundError:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "src", here.parent / "lib", here / "lib"):
        if (candidate / "obslab" / "__init__.py").exists():
            sys.path.insert(0, str(candidate))
            break
