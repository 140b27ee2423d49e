"""OVClassCheckHook: the box head's classes must match the dataset's (count and order)."""
from types import SimpleNamespace

import pytest

from declip_mm.models.detectors import check_head_classes


def _model(names, k=None):
    head = SimpleNamespace(num_classes=len(names) if k is None else k, fc_cls=SimpleNamespace(class_names=names))
    return SimpleNamespace(roi_head=SimpleNamespace(bbox_head=head))


def test_class_check():
    check_head_classes(_model(['a', 'b']), dict(classes=('a', 'b')))
    with pytest.raises(ValueError, match='3 classes but the box head has num_classes=2'):
        check_head_classes(_model(['a', 'b']), dict(classes=('a', 'b', 'c')))
    with pytest.raises(ValueError, match='label order'):
        check_head_classes(_model(['b', 'a']), dict(classes=('a', 'b')))


def test_presets_match_mmdet_datasets():
    from mmdet.datasets import CocoDataset, LVISV1Dataset

    from declip_mm.datasets.ov_detection import OVCocoDataset, resolve_class_names
    assert resolve_class_names('coco') == list(CocoDataset.METAINFO['classes'])
    assert resolve_class_names('lvis_v1') == list(LVISV1Dataset.METAINFO['classes'])
    assert resolve_class_names('ov_coco') == list(OVCocoDataset.METAINFO['classes'])
