"""Mixed-precision choice for training: bf16 where the GPU has it, fp16 + loss scaling elsewhere.

``resolve_amp(cfg, force)`` is what ``tools/train.py`` applies to the config (``--amp`` sets ``force``):

* ``--amp`` on an ``OptimWrapper`` config: ``AmpOptimWrapper`` in ``amp_dtype()``;
* an ``AmpOptimWrapper`` config asking for bf16 on a GPU without bf16 (V100, T4): fp16 + dynamic loss scaling;
* no CUDA device at all: the ``AmpOptimWrapper`` (CUDA only in mmengine) becomes a plain fp32 ``OptimWrapper``.

In every case the autocast dtype only affects the forward; the losses and the N x N similarities are computed in
fp32 (``declip_mm.models.losses``), and the teachers run under ``torch.inference_mode()``.
"""
from typing import Optional

import torch
from mmengine.logging import print_log


def amp_dtype(device: Optional[torch.device] = None) -> str:
    """``'bfloat16'`` when the CUDA device supports it natively (Ampere and newer), else ``'float16'``."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return 'bfloat16'
    return 'float16'


def resolve_amp(cfg, force: bool = False, cuda: Optional[bool] = None, bf16: Optional[bool] = None) -> str:
    """Set ``cfg.optim_wrapper`` for the device; returns the resulting precision (``'bfloat16'``,
    ``'float16'`` or ``'float32'``).

    Args:
        cfg: an mmengine ``Config`` with an ``optim_wrapper``.
        force: ``--amp``: turn an ``OptimWrapper`` into an ``AmpOptimWrapper``.
        cuda / bf16: device capabilities (default: probed; tests pass them).
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if bf16 is None:
        bf16 = cuda and amp_dtype() == 'bfloat16'
    ow = cfg.optim_wrapper
    kind = ow.get('type', 'OptimWrapper')
    if force and kind != 'AmpOptimWrapper':
        if kind != 'OptimWrapper':
            raise ValueError(f'--amp works with OptimWrapper / AmpOptimWrapper configs, got {kind}')
        ow['type'] = kind = 'AmpOptimWrapper'
        ow['dtype'] = 'bfloat16' if bf16 else 'float16'
        ow.setdefault('loss_scale', 'dynamic')
    if kind != 'AmpOptimWrapper':
        if kind == 'OptimWrapper':  # e.g. --cfg-options optim_wrapper.type=OptimWrapper on an AMP config
            ow.pop('dtype', None)
            ow.pop('loss_scale', None)
        return 'float32'
    if not cuda:
        print_log('AmpOptimWrapper needs a CUDA device: training in fp32 with OptimWrapper', logger='current')
        ow['type'] = 'OptimWrapper'
        ow.pop('dtype', None)
        ow.pop('loss_scale', None)
        return 'float32'
    dtype = ow.get('dtype') or 'float16'
    if dtype == 'bfloat16' and not bf16:
        print_log('this GPU has no native bf16: autocast in fp16 with dynamic loss scaling instead', logger='current')
        ow['dtype'] = dtype = 'float16'
        ow['loss_scale'] = 'dynamic'
    return dtype
