"""Per-batch training vocabulary of OV-DQUO (OV-LVIS category sampling) and the matching relabelling."""
from typing import List, Optional, Sequence

import torch
from mmdet.registry import TASK_UTILS as DET_TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor

from declip_mm.registry import TASK_UTILS, register_everywhere


@register_everywhere(DET_TASK_UTILS, TASK_UTILS)
class OVCategorySampler:
    """The classes a training batch is classified over, and its targets relabelled to them.

    ``num_sampled=None``: the whole pool in class order (OV-COCO: the 48 base classes).  ``num_sampled=N``
    (OV-LVIS: 100): U = the sorted unique labels of the batch's true boxes; if |U| >= N a random N of U, else U
    followed by random classes of the pool not in U, N in all (``torch.randperm`` on the labels' device, the
    global generator, as the original).  Pool: ``'all'`` classes (OV-LVIS samples negatives among all 1203, rare
    included) or ``'base'`` (the classes that are not novel).

    Relabelling (:meth:`relabel`): true boxes of classes outside the vocabulary are removed together with their
    ``pseudo`` / ``pseudo_weights`` entries (OV-DQUO's engine filters boxes and labels but not its pseudo mask and
    weights, which would misalign - indexing then fails - when a batch holds more than N true classes); the kept
    labels become positions in the vocabulary; pseudo boxes keep the label -1.
    """

    def __init__(self, num_sampled: Optional[int] = None, pool: str = 'base') -> None:
        if pool not in ('base', 'all'):
            raise ValueError(f"OVCategorySampler: pool must be 'base' or 'all', got {pool!r}")
        if num_sampled is not None and num_sampled < 1:
            raise ValueError(f'OVCategorySampler: num_sampled must be >= 1, got {num_sampled}')
        self.num_sampled = num_sampled
        self.pool = pool

    def pool_indices(self, num_classes: int, novel_indices: Sequence[int] = ()) -> Tensor:
        if self.pool == 'all':
            return torch.arange(num_classes)
        novel = set(int(i) for i in novel_indices)
        return torch.tensor([i for i in range(num_classes) if i not in novel], dtype=torch.long)

    def vocabulary_size(self, num_classes: int, novel_indices: Sequence[int] = ()) -> int:
        """Number of real classes of every training vocabulary (the wildcard comes on top)."""
        size = len(self.pool_indices(num_classes, novel_indices))
        if self.num_sampled is not None:
            if self.num_sampled > size:
                raise ValueError(f'OVCategorySampler: num_sampled={self.num_sampled} but the {self.pool!r} pool has '
                                 f'only {size} classes')
            return self.num_sampled
        return size

    def sample(self, true_labels: Tensor, num_classes: int, novel_indices: Sequence[int] = ()) -> Tensor:
        """(C,) class indices of the batch vocabulary; ``true_labels`` = labels of all true boxes of the batch."""
        device = true_labels.device
        pool = self.pool_indices(num_classes, novel_indices).to(device)
        if self.num_sampled is None:
            return pool
        n = self.vocabulary_size(num_classes, novel_indices)
        gt = true_labels.unique()
        if gt.numel() >= n:
            return gt[torch.randperm(gt.numel(), device=device)][:n]
        neg = pool[~(pool.unsqueeze(1) == gt.unsqueeze(0)).any(-1)]
        neg = neg[torch.randperm(neg.numel(), device=device)][:n - gt.numel()]
        return torch.cat([gt, neg])

    @staticmethod
    def relabel(gt_instances: InstanceData, vocabulary: Tensor) -> InstanceData:
        """Copy of ``gt_instances`` restricted to vocabulary classes (+ pseudo boxes), labels -> positions."""
        labels = gt_instances.labels
        pseudo = gt_instances.pseudo
        hit = labels.unsqueeze(-1) == vocabulary.to(labels.device).unsqueeze(0)
        keep = hit.any(-1) | pseudo
        out = gt_instances[keep]
        new = hit[keep].int().argmax(-1)
        out.labels = torch.where(out.pseudo, torch.full_like(new, -1), new)
        return out


def gt_with_pseudo_fields(gt_instances: InstanceData) -> InstanceData:
    """``gt_instances`` with ``pseudo`` (bool) and ``pseudo_weights`` (float) filled in when absent (all true)."""
    out = gt_instances.clone()
    n = len(out)
    device = out.labels.device
    if 'pseudo' not in out:
        out.pseudo = torch.zeros(n, dtype=torch.bool, device=device)
    else:
        out.pseudo = out.pseudo.to(torch.bool)
    if 'pseudo_weights' not in out:
        out.pseudo_weights = torch.ones(n, dtype=out.bboxes.dtype, device=device)
    if bool(((out.labels < 0) != out.pseudo).any()):
        bad = int(((out.labels < 0) != out.pseudo).sum())
        raise ValueError(f'{bad} ground-truth box(es) have pseudo flags that disagree with their labels '
                         '(pseudo boxes must have label -1, true boxes a class index >= 0)')
    return out


def batch_true_labels(batch_gt: List[InstanceData]) -> Tensor:
    return torch.cat([g.labels[~g.pseudo] for g in batch_gt])
