"""Open-vocabulary segmentation mIoU with detectron2's definition (CAT-Seg / DeCLIP Table 4).

detectron2 ``SemSegEvaluator``: per-class areas over non-ignored pixels; IoU_c = TP / (GT + Pred - TP);
mIoU = mean over the classes whose **dataset-level ground truth is non-empty**.  mmseg's ``IoUMetric`` averages over
union > 0, so a class that is predicted but absent from the ground truth counts as 0 there (lower on ADE-847 /
PC-459).  ``rule='mmseg'`` reproduces that for comparison.

The areas are computed per image with mmseg's ``IoUMetric.intersect_and_union`` and kept **per sample**: mmengine's
``collect_results`` then drops the samples that ``DefaultSampler(round_up=True)`` repeats to pad the last ranks, so
a multi-GPU evaluation counts every image exactly once.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.evaluation.metrics import IoUMetric

from declip_mm.registry import METRICS, SEG_METRICS, register_everywhere

__all__ = ['OVSegMetric', 'image_areas', 'seg_summaries']


def image_areas(pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(4, K) int64 areas of one image: intersect, union, pred, label (mmseg's ``intersect_and_union``).

    Pixels whose GT is ``ignore_index`` or outside [0, K) are dropped (a GT value outside the class range that is not
    the ignore value is not counted as a prediction either).
    """
    pred = pred.reshape(-1).long()
    gt = gt.reshape(-1).long()
    valid = (gt >= 0) & (gt < num_classes) & (pred >= 0) & (pred < num_classes)
    gt = torch.where(valid, gt, torch.full_like(gt, ignore_index))
    areas = IoUMetric.intersect_and_union(pred, gt, num_classes, ignore_index)
    # float32 histogram counts of one image are exact integers (< 2^24 pixels per class); sum them as int64
    return torch.stack([a.round().long() for a in areas]).cpu()


def seg_summaries(areas: np.ndarray, rule: str = 'detectron2') -> Dict[str, object]:
    """Summaries from summed (4, K) areas (intersect, union, pred, label); fractions, not percent."""
    tp, union, pred, gt = (np.asarray(a, dtype=np.float64) for a in areas)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    present = gt > 0
    if rule == 'detectron2':
        valid = present
    elif rule == 'mmseg':
        valid = union > 0
    else:
        raise ValueError(f"rule must be 'detectron2' or 'mmseg', got {rule!r}")
    miou = float(np.mean(iou[valid])) if valid.any() else float('nan')
    total = gt.sum()
    fwiou = float(np.sum(iou[present] * gt[present]) / total) if total > 0 else float('nan')
    return dict(mIoU=miou, fwIoU=fwiou, mACC=float(np.nanmean(acc[present])) if present.any() else float('nan'),
                pACC=float(tp.sum() / total) if total > 0 else float('nan'), IoU=iou, ACC=acc)


@register_everywhere(METRICS, SEG_METRICS)
class OVSegMetric(BaseMetric):
    """mIoU / fwIoU / mACC / pACC (percent) with detectron2's averaging rule.

    Args:
        ignore_index: GT value to ignore (255; **65535 for ADE-847**; 459 for PC-459).
        num_classes: default = ``len(dataset_meta['classes'])``.
        rule: ``'detectron2'`` (classes with GT) or ``'mmseg'`` (classes with union > 0, for comparison).
        also_mmseg_rule: additionally report ``mIoU_mmseg``.
        per_class: log mmseg's per-class IoU / Acc table (class names; IoU of a class without GT or prediction
            is nan).
    One result per image: ``(4, K)`` int64 areas.
    """
    default_prefix = ''

    def __init__(self, ignore_index: int = 255, num_classes: Optional[int] = None, rule: str = 'detectron2',
                 also_mmseg_rule: bool = True, per_class: bool = True, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if rule not in ('detectron2', 'mmseg'):
            raise ValueError(f"rule must be 'detectron2' or 'mmseg', got {rule!r}")
        self.ignore_index = ignore_index
        self.num_classes = num_classes
        self.rule = rule
        self.also_mmseg_rule = also_mmseg_rule
        self.per_class = per_class

    def _k(self) -> int:
        if self.num_classes is not None:
            return self.num_classes
        if not self.dataset_meta or 'classes' not in self.dataset_meta:
            raise ValueError('OVSegMetric needs num_classes or a dataset with metainfo classes')
        return len(self.dataset_meta['classes'])

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        K = self._k()
        for ds in data_samples:
            pred = ds['pred_sem_seg']['data'].squeeze()
            gt = ds['gt_sem_seg']['data'].squeeze().to(pred.device)
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size '
                                 f'for {ds.get("img_path", "an image")}: load annotations after Resize in the test '
                                 'pipeline so the GT keeps its original size')
            self.results.append(image_areas(pred, gt, K, self.ignore_index))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        areas = torch.stack(results).sum(0).numpy()  # (4, K) int64
        main = seg_summaries(areas, self.rule)
        out = OrderedDict(mIoU=round(main['mIoU'] * 100, 2), fwIoU=round(main['fwIoU'] * 100, 2),
                          mACC=round(main['mACC'] * 100, 2), pACC=round(main['pACC'] * 100, 2))
        if self.also_mmseg_rule:
            other = 'mmseg' if self.rule == 'detectron2' else 'detectron2'
            out[f'mIoU_{other}'] = round(seg_summaries(areas, other)['mIoU'] * 100, 2)
        if self.per_class:
            print_log('per class results:\n' + self.class_table(main), logger=MMLogger.get_current_instance())
        return out

    def class_table(self, summary: dict) -> str:
        """mmseg's per-class table (``Class | IoU | Acc``, percent) as a string."""
        from prettytable import PrettyTable
        K = len(summary['IoU'])
        classes = list((self.dataset_meta or {}).get('classes', ()))
        if len(classes) != K:
            classes = [str(i) for i in range(K)]
        table = PrettyTable()
        table.add_column('Class', classes)
        table.add_column('IoU', np.round(summary['IoU'] * 100, 2).tolist())
        table.add_column('Acc', np.round(summary['ACC'] * 100, 2).tolist())
        return table.get_string()
