"""OV-COCO metric: mmdet 3.3's ``OVCocoMetric`` (box AP50 over the base and novel classes of ``dataset_meta``).

Everything is mmdet's (COCO summary, ``bbox_mAP*`` keys, ``classwise`` table, ``metric_items``, the
``bbox_mAP_copypaste`` line, and ``base_ap50`` / ``novel_ap50`` / ``base_ap`` / ``novel_ap`` as fractions, -1 for a
split without ground truth).  This subclass only (1) fills ``base_classes`` / ``novel_classes`` when the dataset
meta lacks them, (2) refuses an annotation file whose category order differs from ``dataset_meta['classes']``
(mmdet maps label i to the i-th json category, so labels would silently be wrong) and (3) reports zeros instead of
no keys when there are no detections at all.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

from mmdet.evaluation.metrics import OVCocoMetric
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
