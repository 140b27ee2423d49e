"""The one compatibility spot for third-party breakage.

PyPI's ``lvis`` 0.5.3 (needed by mmdet's ``LVISMetric``) still calls ``np.float``, which numpy 2 removed;
``LVISEval`` then dies with ``AttributeError`` at evaluation time.  We restore the alias (it was always
just the builtin ``float``) before anything imports ``lvis``.  Remove once lvis ships a fixed release.
"""
import numpy as np


def patch_lvis_numpy_float() -> None:
    if 'float' not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]


patch_lvis_numpy_float()
