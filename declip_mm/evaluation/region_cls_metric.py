"""Open-vocabulary region classification metric (DeCLIP Table 1 / Figure 6 protocol, method doc section 7).

For each score type (``rois``, ``maskpool``, ``crops``): class-mean top-1 / top-5 accuracy, separately over thing
and stuff regions (``mAcc`` = mean over the classes that occur of the per-class accuracy), in percent.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from declip_mm.registry import METRICS


def class_mean_topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Mean over the classes present in ``labels`` of the fraction of their regions whose label is in the top-k."""
    if labels.numel() == 0:
        return float('nan')
    k = min(k, logits.shape[1])
    hit = (logits.topk(k, dim=1).indices == labels[:, None]).any(1).float()
    accs = [hit[labels == c].mean().item() for c in labels.unique()]
    return 100.0 * float(np.mean(accs))


@METRICS.register_module()
class RegionClsMetric(BaseMetric):
    """Collects the distiller's region predictions and reports ``{score}_{thing|stuff}_top{1|5}`` (percent)."""

    default_prefix = 'region'

    def __init__(self, scores: Sequence[str] = ('rois', 'maskpool', 'crops'), topk: Sequence[int] = (1, 5),
                 collect_device: str = 'cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.scores = tuple(scores)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for pred in data_samples:
            self.results.append({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in pred.items()})

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        labels = torch.cat([r['labels'] for r in results]) if results else torch.zeros(0, dtype=torch.long)
        isthing = torch.cat([r['isthing'] for r in results]) if results else torch.zeros(0, dtype=torch.bool)
        out = {}
        for s in self.scores:
            if not results or any(s not in r and r['labels'].numel() for r in results):
                continue
            logits = torch.cat([r[s] for r in results if s in r])
            for split, sel in (('thing', isthing), ('stuff', ~isthing)):
                for k in self.topk:
                    out[f'{s}_{split}_top{k}'] = class_mean_topk(logits[sel], labels[sel], k)
        return out
