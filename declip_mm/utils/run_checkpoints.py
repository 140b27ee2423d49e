"""mmengine checkpoints read with ``weights_only=True`` (never the full unpickler), and a safe ``--resume``.

mmengine 0.10 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means ``weights_only=True``, under
which mmengine's own run-state files fail: the message hub pickles ``HistoryBuffer`` objects (numpy arrays inside)
whose ``statistics_methods`` dict holds ``HistoryBuffer.min / max / current / mean``, which pickle stores as
``getattr(HistoryBuffer, 'min')``.  Exactly these globals are allowed here: ``HistoryBuffer``, numpy's array / scalar /
dtype reconstruction, and, under the name ``builtins.getattr``, a stand-in that resolves only HistoryBuffer's
statistics methods (the real ``getattr`` is never allowed).  Anything else is refused with an error naming the file.

Numpy 1.x wrote the array / scalar globals as ``numpy.core.multiarray.*`` (numpy 2: ``numpy._core``); both names are
allowed, so checkpoints saved under numpy 1 (mmdet 2.x, detectron2, older mmengine runs) load too.  This is the
project's one allow-list: the model converters read their sources through :func:`load_checkpoint_file` as well.

Nothing is changed globally: :func:`mmengine_checkpoint_loading` applies the allow-list and our loader for one block
(our ``tools/train.py`` and ``tools/test.py`` run the whole job inside it).  Paths may be ``http(s)://`` URLs or
``hf-hub:`` files (:func:`declip_mm.utils.remote_files.resolve_file`: downloaded once into a cache).
"""
import contextlib
import glob
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Optional, Sequence

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
    for name in ('_reconstruct', 'scalar'):  # the names numpy 1.x pickles carry
        allowed.append((getattr(core.multiarray, name), f'numpy.core.multiarray.{name}'))
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


def load_checkpoint_file(filename: str, map_location=None, extra_globals: Sequence = ()):
    """``torch.load(filename, weights_only=True)`` with :func:`mmengine_safe_globals` allowed (plus
    ``extra_globals``: what one foreign format needs, e.g. ``argparse.Namespace`` for OV-DQUO's saved ``args``).

    Has mmengine's local-loader signature (``CheckpointLoader`` scheme ``''``).  ``filename`` may be remote
    (``http(s)://``, ``hf-hub:``; downloaded once into the cache).  Raises :class:`CheckpointLoadError` naming the
    file when it is truncated, not a torch file, or pickles a global outside the allow-list (named in the message).
    """
    from declip_mm.utils.remote_files import resolve_file
    filename = resolve_file(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals() + list(extra_globals)):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        what = refused_global(e)
        if what is None:  # not a pickle the restricted unpickler understands: random bytes, a damaged file, ...
            raise CheckpointLoadError(unreadable_message(filename, e)) from None
        raise CheckpointLoadError(
            f'{filename}: refusing to load it: it pickles {what}, which is outside the allow-list of plain weights and '
            'mmengine run-state checkpoints. It is never unpickled with weights_only=False; if you trust it, re-save '
            'its tensors as a plain state dict.') from None
    except Exception as e:  # noqa: BLE001 - zip / pickle errors of a damaged or foreign file (IndexError, ...)
        raise CheckpointLoadError(unreadable_message(filename, e)) from None


def refused_global(e: Exception) -> Optional[str]:
    """The global a ``weights_only`` unpickling error refused (``'GLOBAL os.system'``, ``'getattr(...)'``), or None
    when the error is not a refusal (a damaged pickle)."""
    text = str(e)
    m = re.search(r'(?:Unsupported global: |unsupported )GLOBAL (\S+?)[.,]?(?:\s|$)', text)
    if m:
        return f'GLOBAL {m.group(1)}'
    m = re.search(r'getattr\([^\n]*not allowed|Trying to [^\n]+', text)
    return m.group(0).rstrip('.') if m else None


def unreadable_message(filename: str, e: Exception) -> str:
    """Why ``filename`` could not be read, saying whether it is a truncated archive or not a torch file at all."""
    with open(filename, 'rb') as f:
        head = f.read(4)
    problem = checkpoint_problem(filename) if head == b'PK\x03\x04' else None
    if problem is not None and problem.startswith('corrupt'):
        return f'{filename}: unreadable checkpoint, damaged ({problem})'
    if problem is not None:
        return f'{filename}: unreadable checkpoint, truncated (its zip archive ends early: an interrupted download or save)'
    if head[:1] == b'\x80':
        kind = 'a legacy (non-zip) torch file that could not be read, probably truncated'
    else:
        kind = 'not a torch checkpoint (neither a zip archive nor a pickle; wrong file?)'
    return f'{filename}: unreadable checkpoint, {kind} ({_last_line(e)})'


def _last_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith(('Check the doc', 'Please'))]
    return f'{type(e).__name__}: {lines[-1][:200] if lines else ""}'


@contextlib.contextmanager
def mmengine_checkpoint_loading():
    """Inside the block mmengine's local-file and http(s) loaders are :func:`load_checkpoint_file` (so ``load_from``,
    ``--resume`` and ``tools/test.py CKPT`` read with ``weights_only=True``, and may be ``http(s)://`` / ``hf-hub:``
    specs downloaded into our cache); restored afterwards."""
    from mmengine.runner.checkpoint import CheckpointLoader
    saved = CheckpointLoader._schemes
    schemes = OrderedDict(saved)
    for prefix in ('', 'http://', 'https://'):  # hf-hub: falls through to '' (load_checkpoint_file resolves it)
        schemes[prefix] = load_checkpoint_file
    schemes.move_to_end('')  # '' matches every path: tried last
    CheckpointLoader._schemes = schemes
    try:
        yield
    finally:
        CheckpointLoader._schemes = saved


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
