"""OV-DQUO's classification loss: a varifocal loss on one objectness logit with IoU targets and pseudo weights."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS as DET_MODELS
from torch import Tensor

from declip_mm.registry import MODELS, register_everywhere


def ov_varifocal_loss(pred: Tensor, target: Tensor, matched: Tensor, weight: Optional[Tensor] = None,
                      alpha: float = 0.75, gamma: float = 2.0, detach_prob: bool = True,
                      zero_iou_negative: bool = False) -> Tensor:
    """Element-wise loss ``BCE(z, t) * (alpha * p^gamma * (1 - m) + t) * weight``.

    Args:
        pred: logits z; target: IoU targets t (0 where unmatched); matched: m, 1 for matched queries (true or
            pseudo); weight: per-element factor (pseudo matches: foreground weight ** 0.5).
        detach_prob: p = sigmoid(z) without gradient (OV-DQUO); mmdet's ``VarifocalLoss`` keeps the gradient.
        zero_iou_negative: treat a matched query with t = 0 as a negative (weight alpha p^gamma).  OV-DQUO: False,
            such a query gets weight t = 0, i.e. no loss at all.
    """
    p = pred.sigmoid()
    if detach_prob:
        p = p.detach()
    m = matched.to(pred.dtype)
    if zero_iou_negative:
        m = m * (target > 0).to(pred.dtype)
    focal_weight = alpha * p.pow(gamma) * (1 - m) + target
    loss = F.binary_cross_entropy_with_logits(pred, target, reduction='none') * focal_weight
    return loss if weight is None else loss * weight


@register_everywhere(DET_MODELS, MODELS)
class OVVarifocalLoss(nn.Module):
    """:func:`ov_varifocal_loss` summed and divided by ``avg_factor`` (matched true + pseudo boxes), times
    ``loss_weight``.  ``use_sigmoid`` is always True (one objectness logit per query)."""

    use_sigmoid = True

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0, detach_prob: bool = True,
                 zero_iou_negative: bool = False, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.gamma = alpha, gamma
        self.detach_prob = detach_prob
        self.zero_iou_negative = zero_iou_negative
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, matched: Tensor, weight: Optional[Tensor] = None,
                avg_factor: float = 1.0) -> Tensor:
        loss = ov_varifocal_loss(pred, target, matched, weight, self.alpha, self.gamma, self.detach_prob,
                                 self.zero_iou_negative)
        return self.loss_weight * loss.sum() / avg_factor

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, gamma={self.gamma}, detach_prob={self.detach_prob}, '
                f'zero_iou_negative={self.zero_iou_negative}, loss_weight={self.loss_weight}')
