"""The official weight-space ensemble at save time: ``saved = alpha * student + (1 - alpha) * initial``.

``alpha >= 1`` disables it (the official default 2.0). Training always continues on the raw student.
"""
from typing import Dict

import torch
from mmengine.model import is_model_wrapper


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def ensemble_state(student: Dict[str, torch.Tensor], initial: Dict[str, torch.Tensor],
                   alpha: float) -> Dict[str, torch.Tensor]:
    """``alpha * student + (1 - alpha) * initial`` for floating tensors present in both; others copied."""
    if alpha >= 1:
        return {k: v.detach().clone() for k, v in student.items()}
    out = {}
    for k, v in student.items():
        if v.is_floating_point() and k in initial:
            out[k] = (alpha * v.detach().float() + (1 - alpha) * initial[k].detach().float()).to(v.dtype)
        else:
            out[k] = v.detach().clone()
    return out


def ensemble_checkpoint_state_dict(state_dict: Dict[str, torch.Tensor], alpha: float,
                                   student_prefix: str = 'student.',
                                   teacher_prefix: str = 'teacher.') -> Dict[str, torch.Tensor]:
    """Apply the ensemble to the ``student.*`` entries of a distiller state dict (teacher = initial weights)."""
    if alpha >= 1:
        return state_dict
    out = dict(state_dict)
    for k, v in state_dict.items():
        if k.startswith(student_prefix):
            t = state_dict.get(teacher_prefix + k[len(student_prefix):])
            if t is not None and v.is_floating_point():
                out[k] = (alpha * v.float() + (1 - alpha) * t.float()).to(v.dtype)
    return out
