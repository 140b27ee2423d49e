"""F-ViT's classification loss: class-weighted softmax CE where zero-weight (novel) columns are excluded.

Given logits (N, C+1) and per-class weights w (C+1,) — 1 base, 0 novel, ``bg_weight`` for background (last) —
every column with w == 0 is set to -inf before the softmax (so novel classes neither receive probability mass
nor gradient), each sample's CE is multiplied by w[label], and the sum is divided by ``avg_factor`` (the number
of sampled RoIs, as passed by mmdet's ``BBoxHead.loss``).
"""
import json
from typing import Optional, Sequence, Union

import torch
from mmdet.models.losses import CrossEntropyLoss

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere


def resolve_class_weight(class_weight: Union[str, Sequence[float], None], bg_weight: Optional[float]):
    """A list from ``class_weight`` (list, or JSON file holding a list; shipped files resolve under
    ``declip_mm/data``), with ``bg_weight`` appended as the background column when given."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        from declip_mm.datasets.ov_detection import data_path
        with open(data_path(class_weight)) as f:
            class_weight = json.load(f)
        if isinstance(class_weight, dict):
            class_weight = class_weight['class_weight']
    class_weight = [float(w) for w in class_weight]
    if bg_weight is not None:
        class_weight = class_weight + [float(bg_weight)]
    return class_weight


@register_everywhere(DET_MODELS, MODELS)
class ZeroWeightMaskedCrossEntropyLoss(CrossEntropyLoss):
    """Softmax CE with per-class weights whose zero-weight columns are masked to -inf (F-ViT ``CustomCE``).

    Args:
        class_weight: C+1 weights (or C weights + ``bg_weight``), or a JSON file with the list.
        bg_weight: appended background weight (0.6 OV-COCO, 0.9 OV-LVIS).
    """

    def __init__(self, class_weight=None, bg_weight: Optional[float] = None, loss_weight: float = 1.0,
                 reduction: str = 'mean'):
        super().__init__(use_sigmoid=False, use_mask=False, reduction=reduction,
                         class_weight=resolve_class_weight(class_weight, bg_weight), loss_weight=loss_weight)

    @property
    def zero_weight_columns(self) -> Optional[torch.Tensor]:
        """Indices of masked (novel) columns, or None without class weights."""
        if self.class_weight is None:
            return None
        return torch.nonzero(torch.tensor(self.class_weight) == 0, as_tuple=False).flatten()

    def forward(self, cls_score, label, weight=None, avg_factor=None, reduction_override=None, **kwargs):
        if self.class_weight is not None:
            if cls_score.shape[-1] != len(self.class_weight):
                raise ValueError(f'ZeroWeightMaskedCrossEntropyLoss: {len(self.class_weight)} class weights but '
                                 f'the logits have {cls_score.shape[-1]} columns (num_classes + 1)')
            zero = cls_score.new_tensor(self.class_weight) == 0
            if zero.any():
                # keep a sample's own label column finite so a (zero-weight) novel label gives 0, not 0 * inf = nan
                own = torch.zeros_like(cls_score, dtype=torch.bool)
                if cls_score.numel() > 0:
                    own.scatter_(1, label.long().clamp(0, cls_score.shape[-1] - 1).view(-1, 1), True)
                cls_score = cls_score.masked_fill(zero.unsqueeze(0) & ~own, float('-inf'))
        return super().forward(cls_score, label, weight, avg_factor=avg_factor,
                               reduction_override=reduction_override, **kwargs)
