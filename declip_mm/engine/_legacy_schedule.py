"""TEMPORARY (equality test against the mmengine schedule; deleted in the next commit)."""
import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from declip_mm.registry import PARAM_SCHEDULERS


def warmup_cosine_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the base LR at (0-based) iteration ``step``."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span))


class WarmupCosineParamScheduler(_ParamScheduler):
    """Param scheduler with the closed-form warmup + cosine factor (iteration based)."""

    def __init__(self, optimizer, param_name: str = 'lr', warmup_iters: int = 1000, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = False, verbose: bool = False):
        if end == INF:
            raise ValueError('DeCLIPWarmupCosineLR needs a finite `end` (the total number of iterations or '
                             'epochs with convert_to_iter_based=True)')
        self.warmup_iters = int(warmup_iters)
        super().__init__(optimizer, param_name, begin=begin, end=end, last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls, *args, begin=0, end=INF, by_epoch=True, epoch_length=None, **kwargs):
        assert by_epoch and epoch_length, 'epoch-based config with a known epoch_length is required'
        begin = int(begin * epoch_length)
        end = int(end * epoch_length) if end != INF else end
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)

    def _get_value(self):
        f = warmup_cosine_factor(self.last_step, self.warmup_iters, self.end - self.begin)
        return [base * f for base in self.base_values]



class DeCLIPWarmupCosineLR(LRSchedulerMixin, WarmupCosineParamScheduler):
    """LR version: ``dict(type='DeCLIPWarmupCosineLR', warmup_iters=1000, begin=0, end=6, by_epoch=True,
    convert_to_iter_based=True)``."""
from typing import List, Tuple

import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS

from declip_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS


def is_no_decay(name: str, param) -> bool:
    """The official ``exclude`` rule for the weight-decay-free group."""
    return param.ndim < 2 or 'bn' in name or 'ln' in name or 'bias' in name or 'logit_scale' in name


def family_betas(model: nn.Module) -> Tuple[Tuple[float, float], float]:
    """(betas, eps) by model family: EVA (0.9, 0.999, 1e-8); OpenAI ViT (0.9, 0.98, 1e-6)."""
    student = getattr(model, 'student', model)
    family = getattr(student, 'family', None)
    if family is None:
        name = str(getattr(student, 'model_name', ''))
        family = 'openai' if 'vit' in name.lower() and not name.upper().startswith('EVA') else 'eva'
    return ((0.9, 0.98), 1e-6) if family == 'openai' else ((0.9, 0.999), 1e-8)


def split_decay_groups(model: nn.Module) -> Tuple[List[str], List[str]]:
    """(names with decay, names without decay) over trainable parameters, in ``named_parameters`` order."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if is_no_decay(n, p) else decay).append(n)
    return decay, no_decay



class DeCLIPOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Builds ``optim_wrapper`` with two AdamW groups (decay / no-decay) over the trainable parameters.

    ``optim_wrapper=dict(type='AmpOptimWrapper', dtype='float16', optimizer=dict(type='AdamW', lr=1e-5,
    weight_decay=0.1, betas='auto'), constructor='DeCLIPOptimWrapperConstructor')``. Each group records its
    parameter ``names``.
    """

    def __call__(self, model: nn.Module):
        if is_model_wrapper(model):
            model = model.module
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        opt_cfg = self.optimizer_cfg.copy()
        wd = opt_cfg.get('weight_decay', 0.0)
        if opt_cfg.get('betas', 'auto') == 'auto':
            betas, eps = family_betas(model)
            opt_cfg['betas'] = betas
            if opt_cfg.get('eps', 'auto') == 'auto':
                opt_cfg['eps'] = eps
        elif opt_cfg.get('eps') == 'auto':
            opt_cfg['eps'] = family_betas(model)[1]
        params = dict(model.named_parameters())
        decay, no_decay = split_decay_groups(model)
        if not decay and not no_decay:
            raise ValueError('DeCLIPOptimWrapperConstructor: the model has no trainable parameters')
        opt_cfg['params'] = [
            dict(params=[params[n] for n in no_decay], weight_decay=0.0, names=no_decay),
            dict(params=[params[n] for n in decay], weight_decay=wd, names=decay),
        ]
        optimizer = OPTIMIZERS.build(opt_cfg)
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))
