"""The lvis / numpy-2 fix applies only inside our LVIS metric: mmdet's LVISMetric runs, np.float stays absent."""
import json

import numpy as np
import pytest

import declip_mm  # noqa: F401


def _lvis_gt(path):
    cats = [dict(id=1, name='cat', frequency='r'), dict(id=2, name='dog', frequency='f')]
    images = [dict(id=i, width=100, height=100, neg_category_ids=[], not_exhaustive_category_ids=[])
              for i in (1, 2)]
    anns = []
    for i, (img, cat, box) in enumerate([(1, 1, [10, 10, 30, 30]), (2, 2, [50, 40, 20, 30])]):
        x, y, w, h = box
        anns.append(dict(id=i + 1, image_id=img, category_id=cat, bbox=box, area=w * h,
                         segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    json.dump(dict(images=images, categories=cats, annotations=anns), open(path, 'w'))


def _dets():
    return [dict(image_id=1, category_id=1, bbox=[10, 10, 30, 30], score=0.9),
            dict(image_id=2, category_id=2, bbox=[0, 0, 10, 10], score=0.8)]


def test_plain_lvis_eval_needs_the_alias(tmp_path):
    from lvis import LVIS, LVISEval, LVISResults
    assert 'float' not in np.__dict__  # importing declip_mm did not add it
    _lvis_gt(tmp_path / 'gt.json')
    gt = LVIS(str(tmp_path / 'gt.json'))
    with pytest.raises(AttributeError, match='float'):  # why the fix exists (remove it once this fails)
        ev = LVISEval(gt, LVISResults(gt, _dets()), 'bbox')
        ev.run()


def test_ov_lvis_metric_evaluates_and_leaves_numpy_alone(tmp_path):
    import torch
    from declip_mm.evaluation.lvis_metric import OVLVISMetric
    _lvis_gt(tmp_path / 'gt.json')
    m = OVLVISMetric(ann_file=str(tmp_path / 'gt.json'), metric='bbox')
    m.dataset_meta = dict(classes=('cat', 'dog'))
    samples = []
    for img_id, (label, box, score) in ((1, (0, [10, 10, 40, 40], 0.9)), (2, (1, [0, 0, 10, 10], 0.8))):
        samples.append(dict(img_id=img_id, ori_shape=(100, 100), pred_instances=dict(
            bboxes=torch.tensor([box], dtype=torch.float32), scores=torch.tensor([score]),
            labels=torch.tensor([label]))))
    m.process({}, samples)
    res = m.compute_metrics(m.results)
    assert res['bbox_APr'] == pytest.approx(1.0)  # the rare class is found exactly
    assert res['bbox_APf'] == pytest.approx(0.0)  # the frequent one is missed
    assert 'float' not in np.__dict__  # the alias lived only during the evaluation
