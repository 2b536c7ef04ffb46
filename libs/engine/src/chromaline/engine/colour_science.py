"""colour-science, imported without what the engine never uses.

``import colour`` also imports its plotting package (and with it ``matplotlib.pyplot``) and, only
to learn whether they are installed, pandas and OpenImageIO. The engine uses none of them, and
together they cost each worker process up to 100 MB resident. The engine's modules take
``colour`` from here: it is imported once with those packages hidden, which are then unhidden, so
a later ``import colour.plotting`` or ``import pandas`` works as usual.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

UNUSED_OPTIONAL_PACKAGES = ("pandas", "OpenImageIO")
"""colour-science's optional packages it imports at start when they are installed."""
PLOTTING = "colour.plotting"


def _import_colour() -> types.ModuleType:
    if "colour" in sys.modules:
        return sys.modules["colour"]
    hidden = [name for name in UNUSED_OPTIONAL_PACKAGES if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # None makes `import name` fail
    sys.modules[PLOTTING] = types.ModuleType(PLOTTING)
    try:
        import colour
    finally:
        for name in [*hidden, PLOTTING]:
            del sys.modules[name]
    return colour


if TYPE_CHECKING:
    import colour as colour
else:
    colour = _import_colour()
