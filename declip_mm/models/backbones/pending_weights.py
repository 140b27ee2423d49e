"""CLIP weights that a full model checkpoint may provide instead of the initial CLIP file.

``tools/test.py CONFIG TRAINED.pth`` on an F-ViT / CAT-Seg model must not need the CLIP file the training started
from: the trained checkpoint holds the backbone (and text tower).  mmdet does this by loading pretrained weights in
``init_weights``, which only training calls; our modules load their file at construction (they are also used
standalone), so a missing file is deferred instead: the module is built with random weights and marked *pending*.
Loading a state dict that holds all of its weights (mmengine's ``load_from``, ``tools/test.py CKPT``,
``model.load_state_dict``) clears the mark.  Still pending, ``init_weights`` (training) and every forward raise the
not-found error, so random weights are never used silently.  A remote checkpoint (``http(s)://``, ``hf-hub:``) is
downloaded here (once, into the cache); one that cannot be fetched (offline, ...) is deferred the same way, and its
download error is what is raised when the weights are needed.
"""
import logging
import os.path as osp
from typing import Optional

import torch.nn as nn
from mmengine.logging import print_log

from declip_mm.utils.remote_files import WeightsDownloadError, is_remote, resolve_file
from .checkpoint import CheckpointNotFoundError


def _not_found(path: str, who: str, reason: Optional[str] = None) -> CheckpointNotFoundError:
    what = reason or (f'checkpoint file not found: {path!r} ({who}; give a local file, an http(s):// URL or an '
                      'hf-hub: file)')
    return CheckpointNotFoundError(f'{what}; and no full model checkpoint (tools/test.py CKPT / load_from) provided '
                                   f'these weights ({who})')


def _clear_when_complete(module, state_dict, prefix, *args, **kwargs) -> None:
    """Load-state-dict pre-hook: the pending mark goes once every weight of the module is in ``state_dict``."""
    if module._pending_checkpoint and all(prefix + k in state_dict for k in module.state_dict()):
        print_log(f'{type(module).__name__}: weights of the missing {module._pending_checkpoint} taken from the '
                  'loaded model checkpoint', logger='current')
        module._pending_checkpoint = None


def defer_missing_checkpoint(module: nn.Module, path) -> bool:
    """True when ``path`` is given but missing (or remote and cannot be downloaded): ``module`` is marked pending
    (warning logged) and must not read it.  A remote ``path`` is downloaded into the cache here."""
    if not path:
        return False
    reason = None
    if is_remote(str(path)):
        try:
            resolve_file(str(path))
            return False
        except WeightsDownloadError as e:
            reason = str(e)
    elif osp.isfile(osp.expanduser(str(path).split('#sha256=')[0])):
        return False
    module._pending_checkpoint = str(path)
    module._pending_reason = reason
    module.register_load_state_dict_pre_hook(_clear_when_complete)
    print_log(f'{type(module).__name__}: {reason or str(path) + " not found"}; its weights must come from a full '
              'model checkpoint (tools/test.py CKPT / load_from), otherwise it raises when used or trained',
              logger='current', level=logging.WARNING)
    return True


def check_weights_loaded(module: nn.Module) -> None:
    """Raise the not-found error if ``module`` is still pending."""
    path = getattr(module, '_pending_checkpoint', None)
    if path:
        raise _not_found(path, type(module).__name__, getattr(module, '_pending_reason', None))
