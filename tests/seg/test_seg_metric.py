"""OVSegMetric: detectron2 mIoU rule vs mmseg IoUMetric (docs/catseg.md §9 worked example)."""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from declip_mm.evaluation.seg_metric import OVSegMetric, confusion_matrix, miou_from_confusion


def sample(pred, gt):
    ds = SegDataSample()
    ds.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    ds.gt_sem_seg = PixelData(data=torch.tensor(gt)[None])
    return ds.to_dict()


def run_metric(metric, pairs, classes=('a', 'b', 'c')):
    metric.dataset_meta = dict(classes=classes)
    for p, g in pairs:
        metric.process({}, [sample(p, g)])
    return metric.evaluate(len(pairs))


def run_iou_metric(pairs, classes=('a', 'b', 'c')):
    from mmseg.evaluation import IoUMetric
    m = IoUMetric(iou_metrics=['mIoU'])
    m.dataset_meta = dict(classes=classes)
    for p, g in pairs:
        m.process({}, [sample(p, g)])
    return m.evaluate(len(pairs))


def test_confusion_matrix_by_hand():
    gt = torch.tensor([[0, 0, 1], [2, 255, 1]])
    pred = torch.tensor([[0, 1, 1], [2, 2, 0]])
    conf = confusion_matrix(pred, gt, 3, 255)
    hand = torch.tensor([[1, 1, 0],
                         [1, 1, 0],
                         [0, 0, 1]])
    assert torch.equal(conf, hand)
    r = miou_from_confusion(conf.numpy())
    # IoU0 = 1/(2+2-1), IoU1 = 1/(2+2-1), IoU2 = 1/1
    assert r['mIoU'] == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)
    assert r['pACC'] == pytest.approx(3 / 5)


def test_worked_example_075_vs_mmseg_05():
    gt = [[0, 0], [1, 1]]
    pred = [[0, 2], [1, 1]]
    ours = run_metric(OVSegMetric(), [(pred, gt)])
    assert ours['mIoU'] == pytest.approx(75.0)          # class 2 has no GT: excluded
    assert ours['mIoU_mmseg'] == pytest.approx(50.0)    # counted as 0 by mmseg's rule
    assert run_iou_metric([(pred, gt)])['mIoU'] == pytest.approx(50.0)  # mmseg IoUMetric itself


def test_agrees_with_iou_metric_when_no_class_is_predicted_but_absent():
    rng = np.random.RandomState(0)
    pairs = []
    for _ in range(3):
        g = rng.randint(0, 3, (6, 7))
        p = np.where(rng.rand(6, 7) < 0.7, g, rng.randint(0, 3, (6, 7)))
        g[0, 0] = 0
        g[0, 1] = 1
        g[0, 2] = 2  # every class present in GT
        pairs.append((p.tolist(), g.tolist()))
    ours = run_metric(OVSegMetric(), pairs)
    ref = run_iou_metric(pairs)
    assert ours['mIoU'] == pytest.approx(ref['mIoU'], abs=0.01)


def test_ignored_pixel_changes_nothing():
    gt = [[0, 0, 255], [1, 1, 255]]
    base = run_metric(OVSegMetric(), [([[0, 2, 0], [1, 1, 0]], [[0, 0, 255], [1, 1, 255]])])
    other = run_metric(OVSegMetric(), [([[0, 2, 2], [1, 1, 1]], gt)])
    assert base['mIoU'] == other['mIoU'] == pytest.approx(75.0)


def test_16bit_ignore_and_accumulation_over_batches():
    m = OVSegMetric(ignore_index=65535, num_classes=300)
    gt1 = [[299, 299], [65535, 0]]
    p1 = [[299, 0], [5, 0]]
    gt2 = [[299, 0]]
    p2 = [[299, 0]]
    r = run_metric(m, [(p1, gt1), (p2, gt2)], classes=tuple(str(i) for i in range(300)))
    # class 299: TP 2, GT 3, Pred 2 -> 2/3; class 0: TP 2, GT 2, Pred 3 -> 2/3
    assert r['mIoU'] == pytest.approx(100 * 2 / 3, abs=0.01)
    assert len(m.results) == 0  # cleared after evaluate


def test_shape_mismatch_is_explained():
    m = OVSegMetric()
    m.dataset_meta = dict(classes=('a', 'b'))
    with pytest.raises(ValueError, match='after Resize'):
        m.process({}, [sample([[0, 1, 1], [0, 0, 0]], [[0, 1], [1, 1], [0, 0]])])
