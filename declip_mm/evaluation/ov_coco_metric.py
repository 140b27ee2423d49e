"""OV-COCO metric: mmdet 3.3's ``OVCocoMetric`` (box AP50 over the base and novel classes of ``dataset_meta``).

Everything is mmdet's (COCO summary, ``bbox_mAP*`` keys, ``classwise`` table, ``metric_items``, the
``bbox_mAP_copypaste`` line, and ``base_ap50`` / ``novel_ap50`` / ``base_ap`` / ``novel_ap`` as fractions, -1 for a
split without ground truth).  This subclass only (1) fills ``base_classes`` / ``novel_classes`` when the dataset
meta lacks them, (2) refuses an annotation file whose category order differs from ``dataset_meta['classes']``
(mmdet maps label i to the i-th json category, so labels would silently be wrong) and (3) reports zeros instead of
no keys when there are no detections at all.
"""
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmdet.datasets.api_wrappers import COCO, COCOeval
from mmdet.evaluation.metrics import CocoMetric, OVCocoMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger

from declip_mm.registry import DET_METRICS, METRICS, register_everywhere


@register_everywhere(DET_METRICS, METRICS)
class OVCocoAP50Metric(OVCocoMetric):
    """mmdet's ``OVCocoMetric`` under our registry name.  Headline key: ``coco/novel_ap50``.

    Args:
        novel_classes: names / preset (``'ov_coco'``) / file; None -> ``dataset_meta['novel_classes']``, else the
            OV-COCO novel list.
        base_classes: names; None -> ``dataset_meta['base_classes']``, else every class that is not novel.
        Other args: as :class:`mmdet.evaluation.CocoMetric` (``classwise``, ``metric_items``, ``outfile_prefix``...).
    """
    default_prefix: Optional[str] = 'coco'

    def __init__(self, novel_classes: Union[None, str, Sequence[str]] = None,
                 base_classes: Union[None, str, Sequence[str]] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._novel_spec, self._base_spec = novel_classes, base_classes

    def _ov_meta(self) -> dict:
        from declip_mm.datasets.ov_detection import resolve_novel_names
        meta = dict(self.dataset_meta)
        classes = list(meta['classes'])
        novel = self._novel_spec if self._novel_spec is not None else meta.get('novel_classes')
        novel = resolve_novel_names(novel if novel is not None else 'ov_coco')
        if self._base_spec is not None:
            base = resolve_novel_names(self._base_spec)
        elif self._novel_spec is None and meta.get('base_classes') is not None:
            base = list(meta['base_classes'])
        else:
            base = [c for c in classes if c not in set(novel)]
        meta['novel_classes'], meta['base_classes'] = tuple(novel), tuple(base)
        return meta

    def _check_class_order(self) -> None:
        if self._coco_api is None:  # built from the dataset's own gts: the order is the classes order
            return
        ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
        names = [self._coco_api.load_cats(i)[0]['name'] for i in ids]
        if names != list(self.dataset_meta['classes']):
            raise ValueError('OVCocoAP50Metric: the annotation file lists the classes in a different order (or '
                             'misses some) than dataset_meta["classes"]; mmdet maps label i to the i-th matching '
                             f'json category, so labels would be wrong. json order: {names[:5]}..., classes: '
                             f'{list(self.dataset_meta["classes"])[:5]}...')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        self.dataset_meta = self._ov_meta()
        self._check_class_order()
        if not any(len(pred['labels']) for _, pred in results):
            # mmdet logs an error and returns no keys at all; with ground truth present every AP is 0
            MMLogger.get_current_instance().warning('OVCocoAP50Metric: no detections at all; all APs are 0')
            out = OrderedDict()
            for metric in self.metrics:
                for item in self.metric_items or ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'):
                    out[f'{metric}_{item}'] = 0.0
            out.update(base_ap=0.0, novel_ap=0.0, base_ap50=0.0, novel_ap50=0.0)
            return out
        return super().compute_metrics(results)


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


class LegacyOVCocoAP50Metric(CocoMetric):  # TEMPORARY: equality test only, deleted next commit
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
