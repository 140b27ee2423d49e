"""Open-vocabulary segmentation mIoU with detectron2's definition (CAT-Seg / DeCLIP Table 4).

detectron2 ``SemSegEvaluator``: a confusion matrix over non-ignored pixels; IoU_c = TP / (GT + Pred - TP);
mIoU = mean over the classes whose **dataset-level ground truth is non-empty**.  mmseg's ``IoUMetric`` averages over
union > 0, so a class that is predicted but absent from the ground truth counts as 0 there (lower on ADE-847 /
PC-459).  ``rule='mmseg'`` reproduces that for comparison.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log

from declip_mm.registry import METRICS, SEG_METRICS, register_everywhere

__all__ = ['OVSegMetric', 'confusion_matrix', 'miou_from_confusion']


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(K, K) int64 matrix, rows = ground truth, cols = prediction; GT outside [0, K) or == ignore is dropped."""
    pred = pred.reshape(-1).long()
    gt = gt.reshape(-1).long()
    keep = (gt != ignore_index) & (gt >= 0) & (gt < num_classes) & (pred >= 0) & (pred < num_classes)
    idx = gt[keep] * num_classes + pred[keep]
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def miou_from_confusion(conf: np.ndarray, rule: str = 'detectron2') -> Dict[str, object]:
    """IoU / accuracy summaries from a (K, K) confusion matrix (fractions, not percent)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    gt = conf.sum(1)
    pred = conf.sum(0)
    union = gt + pred - tp
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
        per_class: log the per-class IoU table.
    """
    default_prefix = ''

    def __init__(self, ignore_index: int = 255, num_classes: Optional[int] = None, rule: str = 'detectron2',
                 also_mmseg_rule: bool = True, per_class: bool = False, collect_device: str = 'cpu',
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
        conf = None
        for ds in data_samples:
            pred = ds['pred_sem_seg']['data'].squeeze()
            gt = ds['gt_sem_seg']['data'].squeeze().to(pred.device)
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size '
                                 f'for {ds.get("img_path", "an image")}: load annotations after Resize in the test '
                                 'pipeline so the GT keeps its original size')
            c = confusion_matrix(pred, gt, K, self.ignore_index)
            conf = c if conf is None else conf + c
        if conf is None:
            return
        # a single running matrix per rank keeps memory at K^2 (847^2) instead of K^2 per image
        if self.results:
            self.results[0] += conf
        else:
            self.results.append(conf)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        conf = sum(r.numpy().astype(np.int64) for r in results)
        main = miou_from_confusion(conf, self.rule)
        out = OrderedDict(mIoU=round(main['mIoU'] * 100, 2), fwIoU=round(main['fwIoU'] * 100, 2),
                          mACC=round(main['mACC'] * 100, 2), pACC=round(main['pACC'] * 100, 2))
        if self.also_mmseg_rule:
            other = 'mmseg' if self.rule == 'detectron2' else 'detectron2'
            out[f'mIoU_{other}'] = round(miou_from_confusion(conf, other)['mIoU'] * 100, 2)
        if self.per_class:
            classes = (self.dataset_meta or {}).get('classes', [str(i) for i in range(len(conf))])
            lines = [f'{c}: {("%.2f" % (v * 100)) if not np.isnan(v) else "n/a"}'
                     for c, v in zip(classes, main['IoU'])]
            print_log('per-class IoU\n' + '\n'.join(lines), logger=MMLogger.get_current_instance())
        return out
