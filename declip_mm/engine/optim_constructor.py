"""AdamW set-up of the official DeCLIP / open_clip training code (method doc section 5).

Only parameters with ``requires_grad`` are optimised. Weight decay is 0 for parameters with ``ndim < 2`` or a name
containing ``bn``, ``ln``, ``bias`` or ``logit_scale`` (the official ``exclude`` rule); the rest get ``weight_decay``.
``betas='auto'``: EVA models (official name "EVA02-CLIP-..." has no "vit") -> (0.9, 0.999), eps 1e-8; OpenAI
"ViT-..." -> (0.9, 0.98), eps 1e-6.
"""
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


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
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
