"""OV-COCO metric (mmdet's OVCocoMetric under our name) vs. a direct pycocotools computation."""
import json
import logging

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from declip_mm.evaluation.ov_coco_metric import OVCocoAP50Metric

CATS = [dict(id=1, name='person'), dict(id=3, name='car'), dict(id=5, name='airplane'), dict(id=17, name='cat')]
CLASSES = ['person', 'car', 'airplane', 'cat']        # sorted by id: 1, 3, 5, 17
NOVEL = ['airplane', 'cat']


def _gt(tmp_path):
    images = [dict(id=i, file_name=f'{i}.jpg', height=100, width=100) for i in (1, 2, 3)]
    anns = []
    boxes = {1: [(1, [10, 10, 30, 30]), (5, [50, 50, 20, 40])], 2: [(17, [5, 5, 60, 60]), (3, [70, 10, 20, 20])],
             3: [(1, [20, 30, 40, 50]), (17, [60, 60, 30, 30])]}
    aid = 1
    for img, lst in boxes.items():
        for cid, b in lst:
            anns.append(dict(id=aid, image_id=img, category_id=cid, bbox=b, area=b[2] * b[3], iscrowd=0))
            aid += 1
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=CATS)))
    return str(path), anns


def _samples(preds):
    samples = []
    for img_id in (1, 2, 3):
        lst = preds.get(img_id, [])
        b = torch.tensor([[x, y, x + w, y + h] for _, (x, y, w, h), _ in lst], dtype=torch.float32).reshape(-1, 4)
        samples.append(dict(img_id=img_id, ori_shape=(100, 100),
                            pred_instances=dict(bboxes=b, scores=torch.tensor([s for *_, s in lst]).float(),
                                                labels=torch.tensor([l for l, *_ in lst]).long())))
    return samples


def _run_metric(ann_file, preds, meta=None, **kw):
    """preds: {img_id: list of (label, [x,y,w,h], score)} -> metric output."""
    m = OVCocoAP50Metric(ann_file=ann_file, **({'novel_classes': NOVEL} if meta is None else {}), **kw)
    m.dataset_meta = meta or dict(classes=CLASSES)
    m.process({}, _samples(preds))
    return m.compute_metrics(m.results)


def _direct(ann_file, preds):
    coco = COCO(ann_file)
    cat_ids = coco.getCatIds(catNms=CLASSES)
    dts = [dict(image_id=i, category_id=cat_ids[l], bbox=b, score=s) for i, lst in preds.items() for l, b, s in lst]
    ev = COCOeval(coco, coco.loadRes(dts), 'bbox')
    ev.params.maxDets = [100, 300, 1000]
    ev.evaluate()
    ev.accumulate()
    prec = ev.eval['precision'][0, :, :, 0, -1]
    ap = [np.mean(prec[:, k][prec[:, k] > -1]) if (prec[:, k] > -1).any() else np.nan for k in range(len(cat_ids))]
    names = [coco.loadCats(c)[0]['name'] for c in cat_ids]
    nov = [a for a, n in zip(ap, names) if n in NOVEL]
    base = [a for a, n in zip(ap, names) if n not in NOVEL]
    return np.nanmean(nov), np.nanmean(base), np.nanmean(ap)


def _label(cid):
    return CLASSES.index(next(c['name'] for c in CATS if c['id'] == cid))


def test_perfect_novel_missed_base(tmp_path):
    ann_file, anns = _gt(tmp_path)
    preds = {}
    for a in anns:
        if a['category_id'] in (5, 17):  # novel only
            preds.setdefault(a['image_id'], []).append((_label(a['category_id']), a['bbox'], 0.9))
    out = _run_metric(ann_file, preds)
    assert out['novel_ap50'] == pytest.approx(1.0)
    assert out['base_ap50'] == pytest.approx(0.0)
    assert out['bbox_mAP_50'] == pytest.approx(0.5)
    assert (out['novel_ap50'], out['base_ap50'], out['bbox_mAP_50']) == pytest.approx(_direct(ann_file, preds),
                                                                                       abs=1e-3)


def test_all_perfect(tmp_path):
    ann_file, anns = _gt(tmp_path)
    preds = {}
    for a in anns:
        preds.setdefault(a['image_id'], []).append((_label(a['category_id']), a['bbox'], 0.9))
    out = _run_metric(ann_file, preds)
    assert (out['novel_ap50'], out['base_ap50'], out['bbox_mAP_50']) == pytest.approx((1.0, 1.0, 1.0))


def test_mixed_matches_pycocotools(tmp_path):
    ann_file, anns = _gt(tmp_path)
    rng = np.random.default_rng(0)
    preds = {}
    for a in anns:
        x, y, w, h = a['bbox']
        # a good box, a shifted (IoU < 0.5) high-scoring false positive, and a wrong-class box
        preds.setdefault(a['image_id'], []).append((_label(a['category_id']), [x + 1, y + 1, w, h], 0.6))
        preds[a['image_id']].append((_label(a['category_id']), [x + w * 0.7, y, w, h], float(rng.uniform(0.5, 0.9))))
        preds[a['image_id']].append(((_label(a['category_id']) + 1) % 4, [x, y, w, h], 0.3))
    out = _run_metric(ann_file, preds)
    direct = _direct(ann_file, preds)
    assert (out['novel_ap50'], out['base_ap50']) == pytest.approx(direct[:2], abs=1e-9)
    assert out['bbox_mAP_50'] == pytest.approx(direct[2], abs=5e-4)  # mmdet rounds the summary to 3 decimals
    assert 0 < out['bbox_mAP_50'] < 1


def test_class_order_mismatch_raises(tmp_path):
    ann_file, anns = _gt(tmp_path)
    m = OVCocoAP50Metric(ann_file=ann_file, novel_classes=NOVEL)
    m.dataset_meta = dict(classes=['car', 'person', 'airplane', 'cat'])  # not the json (id) order
    m.process({}, [dict(img_id=1, ori_shape=(100, 100), pred_instances=dict(
        bboxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.long)))])
    with pytest.raises(ValueError, match='order'):
        m.compute_metrics(m.results)


def _mixed_preds(anns, seed=0):
    rng = np.random.default_rng(seed)
    preds = {}
    for a in anns:
        x, y, w, h = a['bbox']
        preds.setdefault(a['image_id'], []).append((_label(a['category_id']), [x + 1, y + 1, w, h], 0.6))
        preds[a['image_id']].append((_label(a['category_id']), [x + w * 0.7, y, w, h], float(rng.uniform(0.5, 0.9))))
        preds[a['image_id']].append(((_label(a['category_id']) + 1) % 4, [x, y, w, h], 0.3))
    return preds


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_classwise_metric_items_and_copypaste_as_in_mmdet(tmp_path):
    from mmengine.logging import MMLogger
    ann_file, anns = _gt(tmp_path)
    preds = _mixed_preds(anns)
    rec = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(rec)
    try:
        out = _run_metric(ann_file, preds, classwise=True, metric_items=['mAP_50'])
    finally:
        logger.removeHandler(rec)
    log = '\n'.join(rec.lines)
    assert set(k for k in out if k.startswith('bbox_')) == {'bbox_mAP_50'}  # metric_items honoured
    assert {f'{c}_precision' for c in CLASSES} <= set(out)  # classwise keys
    assert all(c in log for c in CLASSES) and 'mAP_75' in log  # the per-class table
    assert 'bbox_mAP_copypaste:' in log
    per_class = {c: out[f'{c}_precision'] for c in CLASSES}
    assert all(0 <= v <= 1 for v in per_class.values())


def test_base_and_novel_from_dataset_meta_and_defaults(tmp_path):
    ann_file, anns = _gt(tmp_path)
    preds = {a['image_id']: [] for a in anns}
    for a in anns:
        if a['category_id'] in (5, 17):
            preds[a['image_id']].append((_label(a['category_id']), a['bbox'], 0.9))
    meta = dict(classes=CLASSES, base_classes=('person', 'car'), novel_classes=tuple(NOVEL))
    out = _run_metric(ann_file, preds, meta=meta)
    assert (out['novel_ap50'], out['base_ap50']) == pytest.approx((1.0, 0.0))
    swapped = _run_metric(ann_file, preds, meta=dict(classes=CLASSES), novel_classes=['person', 'car'])
    assert (swapped['novel_ap50'], swapped['base_ap50']) == pytest.approx((0.0, 1.0))  # base = the other classes


def test_no_detections_gives_zeros(tmp_path):
    ann_file, _ = _gt(tmp_path)
    out = _run_metric(ann_file, {})
    assert out['novel_ap50'] == 0.0 and out['base_ap50'] == 0.0 and out['bbox_mAP_50'] == 0.0
