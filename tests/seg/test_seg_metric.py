"""OVSegMetric: detectron2 mIoU rule vs mmseg IoUMetric, per-sample areas, multi-rank collection, class table."""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from declip_mm.evaluation.seg_metric import OVSegMetric, image_areas, seg_summaries


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


def old_confusion_matrix(pred, gt, K, ignore):
    """The previous accumulation (a bincount confusion matrix; rows GT, cols prediction), kept as the reference."""
    pred = torch.as_tensor(pred).reshape(-1).long()
    gt = torch.as_tensor(gt).reshape(-1).long()
    keep = (gt != ignore) & (gt >= 0) & (gt < K) & (pred >= 0) & (pred < K)
    return torch.bincount(gt[keep] * K + pred[keep], minlength=K * K).reshape(K, K)


def test_areas_by_hand():
    gt = torch.tensor([[0, 0, 1], [2, 255, 1]])
    pred = torch.tensor([[0, 1, 1], [2, 2, 0]])
    a = image_areas(pred, gt, 3, 255)
    assert a.dtype == torch.int64
    assert a.tolist() == [[1, 1, 1],   # intersect
                          [3, 3, 1],   # union
                          [2, 2, 1],   # pred
                          [2, 2, 1]]   # label
    r = seg_summaries(a.numpy())
    # IoU0 = 1/(2+2-1), IoU1 = 1/(2+2-1), IoU2 = 1/1
    assert r['mIoU'] == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)
    assert r['pACC'] == pytest.approx(3 / 5)


def test_mmseg_areas_equal_the_old_confusion_matrix():
    """intersect / pred / label from mmseg's intersect_and_union == diag / column sums / row sums of the previous
    confusion matrix, on random images with ignored pixels and out-of-range GT; the metrics are equal too."""
    g = torch.Generator().manual_seed(0)
    K = 7
    tot_new = torch.zeros(4, K, dtype=torch.int64)
    tot_old = torch.zeros(K, K, dtype=torch.int64)
    for _ in range(6):
        gt = torch.randint(0, K + 2, (23, 31), generator=g)   # K, K+1: outside the classes, not ignored
        gt[torch.rand(23, 31, generator=g) < 0.2] = 255
        pred = torch.randint(0, K, (23, 31), generator=g)
        tot_new += image_areas(pred, gt, K, 255)
        tot_old += old_confusion_matrix(pred, gt, K, 255)
    assert torch.equal(tot_new[0], tot_old.diag())
    assert torch.equal(tot_new[2], tot_old.sum(0))
    assert torch.equal(tot_new[3], tot_old.sum(1))
    assert torch.equal(tot_new[1], tot_old.sum(0) + tot_old.sum(1) - tot_old.diag())
    conf = tot_old.double().numpy()
    tp = np.diag(conf)
    iou = tp / (conf.sum(0) + conf.sum(1) - tp)
    new = seg_summaries(tot_new.numpy())
    assert np.allclose(new['IoU'], iou) and new['mIoU'] == pytest.approx(iou[conf.sum(1) > 0].mean())
    assert new['pACC'] == pytest.approx(tp.sum() / conf.sum())
    # and per-class IoU / Acc equal mmseg's own total_area_to_metrics
    from mmseg.evaluation import IoUMetric
    ref = IoUMetric.total_area_to_metrics(*[t.double() for t in tot_new], ['mIoU'])
    assert np.allclose(new['IoU'], np.asarray(ref['IoU']), equal_nan=True)
    assert np.allclose(new['ACC'], np.asarray(ref['Acc']), equal_nan=True)


def test_three_rank_evaluation_counts_every_image_once(tmp_path, monkeypatch):
    """10 images on 3 ranks: DefaultSampler(round_up=True) gives 4 per rank (images 0 and 1 twice); mmengine's
    collect_results drops the repeats from per-sample results.  The metric must equal a 1-rank run.  (The previous
    one-matrix-per-rank result counted images 0 and 1 twice.)"""
    import pickle

    import mmengine.dist.dist as mdist
    from mmengine.dataset import DefaultSampler
    g = torch.Generator().manual_seed(1)
    imgs = []
    for i in range(10):
        gt = torch.randint(0, 3, (5, 6), generator=g)
        # images 0 and 1 are predicted perfectly, the others badly: double counting them raises the mIoU
        pred = gt.clone() if i < 2 else torch.randint(0, 3, (5, 6), generator=g)
        imgs.append((pred.tolist(), gt.tolist()))
    single = run_metric(OVSegMetric(), imgs)

    parts = []
    for rank in range(3):
        monkeypatch.setattr('mmengine.dataset.sampler.get_dist_info', lambda r=rank: (r, 3))
        idx = list(DefaultSampler(list(range(10)), shuffle=False, round_up=True))
        assert len(idx) == 4
        m = OVSegMetric()
        m.dataset_meta = dict(classes=('a', 'b', 'c'))
        for i in idx:
            m.process({}, [sample(*imgs[i])])
        parts.append(m.results)
    assert sum(len(p) for p in parts) == 12  # 2 padded repeats
    # mmengine's own CPU collection as rank 0 of 3, the other ranks' parts already written to the shared tmpdir
    tmpdir = str(tmp_path)
    for rank in (1, 2):
        with open(f'{tmpdir}/part_{rank}.pkl', 'wb') as f:
            pickle.dump(parts[rank], f, protocol=2)
    monkeypatch.setattr(mdist, 'get_dist_info', lambda group=None: (0, 3))
    monkeypatch.setattr(mdist, 'barrier', lambda group=None: None)
    collected = mdist.collect_results_cpu(parts[0], 10, tmpdir=tmpdir)
    assert len(collected) == 10
    m = OVSegMetric()
    m.dataset_meta = dict(classes=('a', 'b', 'c'))
    multi = m.compute_metrics(collected)
    assert multi == single
    # what one summed result per rank gives instead (images 0 and 1 twice): a different, wrong number
    doubled = m.compute_metrics([torch.stack(p).sum(0) for p in parts])
    assert doubled['mIoU'] > single['mIoU']


def test_per_class_table_has_class_names():
    m = OVSegMetric()
    m.dataset_meta = dict(classes=('sky', 'grass', 'car'))
    m.process({}, [sample([[0, 1], [2, 2]], [[0, 1], [1, 2]])])
    table = m.class_table(seg_summaries(torch.stack(m.results).sum(0).numpy()))
    rows = [r for r in table.splitlines() if r.startswith('|')]
    assert [c.strip() for c in rows[0].strip('|').split('|')] == ['Class', 'IoU', 'Acc']
    assert [c.strip() for c in rows[1].strip('|').split('|')] == ['sky', '100.0', '100.0']
    assert [c.strip() for c in rows[2].strip('|').split('|')] == ['grass', '50.0', '50.0']
    assert [c.strip() for c in rows[3].strip('|').split('|')] == ['car', '50.0', '100.0']


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
    # one result per image (so that mmengine can drop padded repeats)
    m.dataset_meta = dict(classes=tuple(str(i) for i in range(300)))
    m.process({}, [sample(p1, gt1), sample(p2, gt2)])
    assert len(m.results) == 2 and tuple(m.results[0].shape) == (4, 300)


def test_shape_mismatch_is_explained():
    m = OVSegMetric()
    m.dataset_meta = dict(classes=('a', 'b'))
    with pytest.raises(ValueError, match='after Resize'):
        m.process({}, [sample([[0, 1, 1], [0, 0, 0]], [[0, 1], [1, 1], [0, 0]])])
