"""Third-party breakage, fixed only where it bites (importing ``declip_mm`` changes nothing global).

PyPI's ``lvis`` 0.5.3 (used by mmdet's ``LVISMetric``) still calls ``np.float``, which numpy 2 removed, so
``LVISEval`` dies with ``AttributeError``.  :func:`numpy_float_alias` restores the alias (it was always the builtin
``float``) for the duration of one call; ``declip_mm.evaluation.OVLVISMetric`` evaluates inside it.  Remove once lvis
ships a fixed release.

mmengine's run-state checkpoints under torch's ``weights_only=True``: see ``declip_mm.utils.run_checkpoints``.
"""
import contextlib

import numpy as np


@contextlib.contextmanager
def numpy_float_alias():
    """``np.float = float`` inside the block when numpy lacks it; removed again afterwards."""
    added = 'float' not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            np.__dict__.pop('float', None)
