"""The one compatibility spot for third-party breakage (applied on ``import declip_mm``).

1. PyPI's ``lvis`` 0.5.3 (needed by mmdet's ``LVISMetric``) still calls ``np.float``, which numpy 2 removed;
   ``LVISEval`` then dies with ``AttributeError`` at evaluation time.  We restore the alias (it was always the
   builtin ``float``).  Remove once lvis ships a fixed release.
2. torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 does not pass the argument: its own
   training checkpoints (``HistoryBuffer`` and numpy arrays in the message hub) then fail to load, which breaks
   ``--resume``, ``load_from`` and ``tools/test.py CKPT``.  We re-register mmengine's local-file loader: it first
   loads with ``weights_only=True`` (numpy arrays / dtypes and ``HistoryBuffer`` allow-listed), which is enough for
   plain weight files; mmengine's own run-state checkpoints also pickle a bound method (``getattr``), which no
   allow-list can admit without defeating ``weights_only``, so those fall back to the full unpickler, as every
   mmengine run did before torch 2.6 (logged once per file).  Backbone weights are always read by
   ``declip_mm.models.backbones.checkpoint`` with ``weights_only=True`` and no fallback.
   Remove once mmengine passes ``weights_only`` itself.
"""
import logging
import os.path as osp
import pickle

import numpy as np
import torch


def patch_lvis_numpy_float() -> None:
    if 'float' not in np.__dict__:
        np.float = float  # type: ignore[attr-defined]


def _mmengine_safe_globals() -> list:
    from mmengine.logging.history_buffer import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    types = [HistoryBuffer, np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    types += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return types


def load_mmengine_checkpoint(filename, map_location=None):
    """mmengine's ``load_from_local`` with an explicit, allow-listed ``weights_only=True``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(_mmengine_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        from mmengine.logging import print_log
        print_log(f'{filename}: an mmengine run-state checkpoint (pickled objects beyond tensors); loading it with '
                  'weights_only=False, as mmengine did before torch 2.6. Only load checkpoints you trust.',
                  logger='current', level=logging.INFO)
        return torch.load(filename, map_location=map_location, weights_only=False)


def patch_mmengine_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_mmengine_checkpoint, force=True)


patch_lvis_numpy_float()
patch_mmengine_checkpoint_loader()
