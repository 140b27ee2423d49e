"""Transforms that carry open-world pseudo boxes (OV-DQUO) through an mmdet pipeline.

Per-instance keys, aligned with ``gt_bboxes`` (length N):

* ``gt_pseudo_flags`` (bool, N): True for a pseudo box (its ``gt_bboxes_labels`` entry is -1);
* ``gt_pseudo_weights`` (float32, N): the pseudo file's ``weight``, 1.0 for true boxes.

mmdet's transforms that drop instances (``RandomCrop``, ``FilterAnnotations``) index only ``gt_bboxes``,
``gt_bboxes_labels``, ``gt_ignore_flags`` and masks, so extra keys would silently misalign after a crop.  The
``Pseudo*`` subclasses run the stock transform with ``gt_bboxes_labels`` temporarily replaced by ``arange(N)``,
read back which instances survived, and index the extra keys (and restore the labels) accordingly.  Transforms
that keep every instance (``RandomFlip``, ``Resize``, ``RandomChoiceResize``, ``DETRResize``, ``Pad``) need no
change.  ``PackPseudoDetInputs`` packs them as ``gt_instances.pseudo`` / ``gt_instances.pseudo_weights``.
"""
from typing import Optional

import numpy as np
from mmdet.datasets.transforms import FilterAnnotations, LoadAnnotations, PackDetInputs, RandomCrop

from declip_mm.registry import DET_TRANSFORMS, TRANSFORMS, register_everywhere

PSEUDO_KEYS = ('gt_pseudo_flags', 'gt_pseudo_weights')


def run_keeping_aligned(transform, results: dict, keys=PSEUDO_KEYS) -> Optional[dict]:
    """Run ``transform(results)`` (one that may drop instances) and index ``keys`` like ``gt_bboxes``."""
    present = [k for k in keys if k in results]
    if not present or results.get('gt_bboxes') is None:
        return transform(results)
    n = len(results['gt_bboxes'])
    for k in present:
        if len(results[k]) != n:
            raise ValueError(f'{k} has {len(results[k])} entries but gt_bboxes has {n}: the pipeline lost their '
                             'alignment before this transform (load them with LoadPseudoAnnotations)')
    labels = results.get('gt_bboxes_labels')
    results['gt_bboxes_labels'] = np.arange(n, dtype=np.int64)
    out = transform(results)
    if out is None:
        return None
    keep = np.asarray(out['gt_bboxes_labels'], dtype=np.int64)
    if len(keep) != len(out['gt_bboxes']):
        raise RuntimeError(f'{type(transform).__name__} changed gt_bboxes and gt_bboxes_labels differently')
    if labels is None:
        del out['gt_bboxes_labels']
    else:
        out['gt_bboxes_labels'] = labels[keep]
    for k in present:
        out[k] = out[k][keep]
    return out


@register_everywhere(TRANSFORMS, DET_TRANSFORMS)
class LoadPseudoAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` that also loads ``gt_pseudo_flags`` / ``gt_pseudo_weights`` from each instance's
    ``pseudo`` / ``pseudo_weight`` (written by the datasets' ``pseudo_ann_file`` option; absent -> False / 1.0)."""

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        if self.with_bbox:
            inst = results.get('instances', [])
            results['gt_pseudo_flags'] = np.array([bool(i.get('pseudo', 0)) for i in inst], dtype=bool)
            results['gt_pseudo_weights'] = np.array([i.get('pseudo_weight', 1.0) for i in inst], dtype=np.float32)
        return results


@register_everywhere(TRANSFORMS, DET_TRANSFORMS)
class PseudoRandomCrop(RandomCrop):
    """mmdet's ``RandomCrop`` (same arguments) keeping ``gt_pseudo_flags`` / ``gt_pseudo_weights`` aligned with the
    boxes that survive the crop."""

    def transform(self, results: dict) -> Optional[dict]:
        return run_keeping_aligned(super().transform, results)


@register_everywhere(TRANSFORMS, DET_TRANSFORMS)
class PseudoFilterAnnotations(FilterAnnotations):
    """mmdet's ``FilterAnnotations`` keeping the pseudo keys aligned.

    Args:
        drop_empty: return None (mmengine then loads another image) when the image has no box at all — also one
            that came in without any, which mmdet's ``keep_empty`` lets through.  OV-DQUO's OV-LVIS reader replaces
            such an image by the next one.
        Others: as ``FilterAnnotations``.
    """

    def __init__(self, *args, drop_empty: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.drop_empty = drop_empty

    def transform(self, results: dict) -> Optional[dict]:
        out = run_keeping_aligned(super().transform, results)
        if out is not None and self.drop_empty and len(out['gt_bboxes']) == 0:
            return None
        return out

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', drop_empty={self.drop_empty})'


@register_everywhere(TRANSFORMS, DET_TRANSFORMS)
class PackPseudoDetInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` that also packs ``gt_instances.pseudo`` (bool) and ``gt_instances.pseudo_weights``
    (float32), split by ``gt_ignore_flags`` like the boxes."""
    mapping_table = dict(PackDetInputs.mapping_table, gt_pseudo_flags='pseudo', gt_pseudo_weights='pseudo_weights')
