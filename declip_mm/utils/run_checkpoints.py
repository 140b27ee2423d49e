"""mmengine checkpoints read with ``weights_only=True`` (never the full unpickler), and a safe ``--resume``.

mmengine 0.10 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means ``weights_only=True``, under
which mmengine's own run-state files fail: the message hub pickles ``HistoryBuffer`` objects (numpy arrays inside)
whose ``statistics_methods`` dict holds ``HistoryBuffer.min / max / current / mean``, which pickle stores as
``getattr(HistoryBuffer, 'min')``.  Exactly these globals are allowed here: ``HistoryBuffer``, numpy's array / scalar /
dtype reconstruction, and, under the name ``builtins.getattr``, a stand-in that resolves only HistoryBuffer's
statistics methods (the real ``getattr`` is never allowed).  Anything else is refused with an error naming the file.

Nothing is changed globally: :func:`mmengine_checkpoint_loading` applies the allow-list and our loader for one block
(our ``tools/train.py`` and ``tools/test.py`` run the whole job inside it).
"""
import contextlib
import glob
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Optional

import numpy as np
import torch

_STATISTICS = ('min', 'max', 'current', 'mean')


class CheckpointLoadError(RuntimeError):
    """A checkpoint file that is truncated, not a torch file, or holds objects outside the allow-list."""


def _history_buffer_statistic(owner, name):
    """Stand-in for ``builtins.getattr`` while unpickling: only ``HistoryBuffer.<statistics method>``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and isinstance(name, str) and (
            name in _STATISTICS or name in HistoryBuffer._statistics_methods) and name in vars(HistoryBuffer):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint (only the statistics '
                                 'methods of mmengine.logging.HistoryBuffer are)')


def mmengine_safe_globals() -> list:
    """The globals an mmengine run-state checkpoint needs beyond torch's defaults (for ``torch.serialization``)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    allowed = [HistoryBuffer, np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
               (_history_buffer_statistic, 'builtins.getattr')]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return allowed


def checkpoint_problem(filename: str) -> Optional[str]:
    """Why ``filename`` is not a complete torch (zip) checkpoint, or None if its archive is intact (CRCs checked,
    nothing unpickled)."""
    if not osp.isfile(filename):
        return 'file not found'
    try:
        with zipfile.ZipFile(filename) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f'not a complete checkpoint archive, probably truncated ({type(e).__name__}: {e})'
    if bad is not None:
        return f'corrupt archive member {bad!r}'
    return None


def load_checkpoint_file(filename: str, map_location=None):
    """``torch.load(filename, weights_only=True)`` with :func:`mmengine_safe_globals` allowed.

    Has mmengine's local-loader signature (``CheckpointLoader`` scheme ``''``).  Raises :class:`CheckpointLoadError`
    naming the file when it is truncated / not a torch file, or pickles anything outside the allow-list.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        what = re.search(r'(Unsupported global: GLOBAL \S+|getattr\([^\n]*not allowed[^\n]*|Trying to [^\n.]+)', str(e))
        if what is None:  # not a pickle the restricted unpickler understands: random bytes, a damaged file, ...
            raise CheckpointLoadError(f'{filename}: not a readable torch checkpoint, probably truncated or corrupt '
                                      f'({_last_line(e)})') from None
        raise CheckpointLoadError(
            f'{filename}: refusing to load it: it pickles objects outside the allow-list of plain weights and '
            f'mmengine run-state checkpoints ({what.group(0)}). It is never unpickled with weights_only=False; if '
            'you trust it, re-save its tensors as a plain state dict.') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointLoadError(f'{filename}: not a readable torch checkpoint, probably truncated or corrupt '
                                  f'({type(e).__name__}: {str(e).splitlines()[0][:200]})') from None


def _last_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith(('Check the doc', 'Please'))]
    return f'{type(e).__name__}: {lines[-1][:200] if lines else ""}'


@contextlib.contextmanager
def mmengine_checkpoint_loading():
    """Inside the block mmengine's local-file loader is :func:`load_checkpoint_file` (so ``load_from``,
    ``--resume`` and ``tools/test.py CKPT`` read with ``weights_only=True``); restored afterwards."""
    from mmengine.runner.checkpoint import CheckpointLoader
    schemes = CheckpointLoader._schemes
    had, old = '' in schemes, schemes.get('')
    schemes[''] = load_checkpoint_file
    try:
        yield
    finally:
        if had:
            schemes[''] = old
        else:
            schemes.pop('', None)


_CKPT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def resolve_resume_checkpoint(work_dir: str, logger=None) -> Optional[str]:
    """The checkpoint an automatic ``--resume`` should use, or None when ``work_dir`` has none (a warning says the
    run starts from scratch).

    The file named in ``work_dir/last_checkpoint`` (mmengine's record) is checked first; when it is truncated or
    corrupt the previous complete ``epoch_*.pth`` / ``iter_*.pth`` in ``work_dir`` (newest first) is used, with a
    warning naming the bad file.  Raises :class:`CheckpointLoadError` when checkpoints exist but none is complete.
    """
    from mmengine.logging import print_log
    logger = logger or 'current'
    record = osp.join(work_dir, 'last_checkpoint')
    last = None
    if osp.isfile(record):
        with open(record) as f:
            last = f.read().strip() or None
    found = [p for p in glob.glob(osp.join(work_dir, '*.pth')) if _CKPT_NAME.match(osp.basename(p))]
    found.sort(key=lambda p: (os.stat(p).st_mtime, int(_CKPT_NAME.match(osp.basename(p)).group(2))), reverse=True)
    candidates = []
    for path in ([last] if last else []) + found:
        if osp.realpath(path) not in {osp.realpath(c) for c in candidates}:
            candidates.append(path)
    if not candidates:
        print_log(f'--resume: no checkpoint in {work_dir}; training starts from scratch', logger=logger,
                  level=logging.WARNING)
        return None
    bad = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            if bad:
                print_log('--resume: skipping ' + '; '.join(f'{p} ({why})' for p, why in bad) + f'. Resuming from the '
                          f'previous complete checkpoint {path}; delete the bad file(s) to silence this warning.',
                          logger=logger, level=logging.WARNING)
            return path
        bad.append((path, problem))
    raise CheckpointLoadError('--resume: no complete checkpoint in ' + work_dir + ': ' +
                              '; '.join(f'{p} ({why})' for p, why in bad) +
                              '. Delete these files to start from scratch, or pass --resume PATH.')
