"""OV-COCO metric: box AP50 averaged over the base, novel and all classes (the OV-COCO protocol)."""
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmdet.datasets.api_wrappers import COCO, COCOeval
from mmdet.evaluation.metrics import CocoMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger

from declip_mm.registry import DET_METRICS, METRICS, register_everywhere


def per_class_ap50(coco_eval) -> np.ndarray:
    """Per-class AP at IoU 0.5 (area 'all', last maxDets) from an accumulated COCOeval -> (K,), NaN for classes
    without ground truth.  ``eval['precision']`` is (iou, recall, class, area, maxdet); IoU 0.5 must be first."""
    if abs(coco_eval.params.iouThrs[0] - 0.5) > 1e-6:
        raise ValueError('COCOeval iouThrs must start at 0.5 for AP50')
    prec = coco_eval.eval['precision'][0, :, :, 0, -1]  # (R, K)
    out = np.full(prec.shape[1], np.nan)
    for k in range(prec.shape[1]):
        p = prec[:, k]
        p = p[p > -1]
        if p.size:
            out[k] = float(np.mean(p))
    return out


@register_everywhere(DET_METRICS, METRICS)
class OVCocoAP50Metric(CocoMetric):
    """COCO evaluation reporting ``novel_ap50``, ``base_ap50``, ``all_ap50`` (x100): per-class AP50 from
    COCOeval averaged (nanmean) over the novel / base / all classes; plus the stock ``bbox_mAP``, ``bbox_mAP_50``.
    For ``segm`` the keys are prefixed ``segm_``.

    Args:
        novel_classes: names / preset (``'ov_coco'``) / file; None -> ``dataset_meta['novel_classes']``, else the
            OV-COCO novel list.
        base_classes: names; None -> every evaluated class that is not novel.
        Other args: as :class:`mmdet.evaluation.CocoMetric` (``metric`` 'bbox' and/or 'segm').
    """
    default_prefix: Optional[str] = 'coco'

    def __init__(self, novel_classes: Union[None, str, Sequence[str]] = None,
                 base_classes: Union[None, str, Sequence[str]] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        bad = [m for m in self.metrics if m not in ('bbox', 'segm')]
        if bad:
            raise KeyError(f'OVCocoAP50Metric supports metric bbox / segm, got {bad}')
        self._novel_spec, self._base_spec = novel_classes, base_classes

    def _splits(self, names):
        from declip_mm.datasets.ov_detection import resolve_novel_names
        novel = self._novel_spec
        if novel is None:
            novel = (self.dataset_meta or {}).get('novel_classes') or 'ov_coco'
        novel = set(resolve_novel_names(novel))
        base = set(resolve_novel_names(self._base_spec)) if self._base_spec is not None else \
            {n for n in names if n not in novel}
        return novel, base

    def ov_summary(self, coco_eval, names: Sequence[str]) -> Dict[str, float]:
        """{'novel_ap50', 'base_ap50', 'all_ap50'} (x100) from an accumulated COCOeval over classes ``names``."""
        ap = per_class_ap50(coco_eval)
        novel, base = self._splits(names)
        idx_n = [i for i, n in enumerate(names) if n in novel]
        idx_b = [i for i, n in enumerate(names) if n in base]

        def mean(idx):
            vals = ap[idx] if len(idx) else np.array([np.nan])
            return float(np.nanmean(vals) * 100) if np.isfinite(vals).any() else float('nan')
        return OrderedDict(novel_ap50=mean(idx_n), base_ap50=mean(idx_b), all_ap50=mean(list(range(len(names)))))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        tmp_dir = None
        if self.outfile_prefix is None:
            tmp_dir = tempfile.TemporaryDirectory()
            outfile_prefix = osp.join(tmp_dir.name, 'results')
        else:
            outfile_prefix = self.outfile_prefix
        if self._coco_api is None:
            self._coco_api = COCO(self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=outfile_prefix))
        if self.cat_ids is None:
            self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
        if self.img_ids is None:
            self.img_ids = self._coco_api.get_img_ids()
        result_files = self.results2json(preds, outfile_prefix)
        eval_results = OrderedDict()
        if self.format_only:
            logger.info(f'results are saved in {osp.dirname(outfile_prefix)}')
            return eval_results
        names = [self._coco_api.load_cats(i)[0]['name'] for i in self.cat_ids]
        if list(names) != list(self.dataset_meta['classes']):
            raise ValueError('OVCocoAP50Metric: the annotation file lists the classes in a different order (or '
                             'misses some) than dataset_meta["classes"]; mmdet maps label i to the i-th matching '
                             f'json category, so labels would be wrong. json order: {names[:5]}..., classes: '
                             f'{list(self.dataset_meta["classes"])[:5]}...')
        for metric in self.metrics:
            predictions = load(result_files[metric])
            if metric == 'segm':
                for p in predictions:
                    p.pop('bbox', None)
            if len(predictions) == 0:
                logger.warning(f'OVCocoAP50Metric: no {metric} predictions; all APs are 0')
                summary = OrderedDict(novel_ap50=0.0, base_ap50=0.0, all_ap50=0.0, mAP=0.0, mAP_50=0.0)
            else:
                coco_dt = self._coco_api.loadRes(predictions)
                coco_eval = COCOeval(self._coco_api, coco_dt, metric)
                coco_eval.params.catIds = self.cat_ids
                coco_eval.params.imgIds = self.img_ids
                coco_eval.params.maxDets = list(self.proposal_nums)
                coco_eval.params.iouThrs = self.iou_thrs
                coco_eval.evaluate()
                coco_eval.accumulate()
                coco_eval.summarize()
                summary = self.ov_summary(coco_eval, names)
                summary['mAP'] = float(f'{coco_eval.stats[0]:.3f}')
                summary['mAP_50'] = float(f'{coco_eval.stats[1]:.3f}')
            for k, v in summary.items():
                key = f'{metric}_{k}' if (metric == 'segm' or k.startswith('mAP')) else k
                eval_results[key] = round(v, 3) if k.endswith('ap50') else v
            logger.info(f'{metric}: ' + ', '.join(f'{k}={v:.2f}' for k, v in summary.items()))
        if tmp_dir is not None:
            tmp_dir.cleanup()
        return eval_results
