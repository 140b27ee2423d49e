"""End to end: the tiny config trains and tests through tools/train.py / tools/test.py on CPU; the reported AP50s
are recomputed independently with pycocotools from the dumped predictions."""
import json
import math
import os.path as osp
import pickle

import numpy as np
import pytest

from .conftest import REPO, load_tool

CFG = osp.join(REPO, 'configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
NOVEL = ('triangle', 'ring')


def pycocotools_ap50(ann_file, dump_file, classes):
    """Per-class AP50 (area all, 100 dets) and COCO's AP50 from the dumped predictions with plain pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(ann_file)
    name2id = {c['name']: c['id'] for c in gt.dataset['categories']}
    with open(dump_file, 'rb') as f:
        samples = pickle.load(f)
    dets = []
    for s in samples:
        p = s['pred_instances']
        for (x1, y1, x2, y2), score, label in zip(np.asarray(p['bboxes']).tolist(), np.asarray(p['scores']).tolist(),
                                                    np.asarray(p['labels']).tolist()):
            dets.append(dict(image_id=s['img_id'], category_id=name2id[classes[label]],
                             bbox=[x1, y1, x2 - x1, y2 - y1], score=score))
    assert dets, 'the model produced no detections'
    ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    per = {}
    for k, cid in enumerate(ev.params.catIds):
        pr = ev.eval['precision'][0, :, k, 0, -1]
        per[gt.cats[cid]['name']] = float(pr[pr > -1].mean()) if (pr > -1).any() else float('nan')
    return per, ev.stats[1], len(samples)


def test_tiny_config_train_and_test(synthetic_det, tmp_path):
    root = synthetic_det['root'] + '/'
    ann = f'{root}annotations/val.json'
    opts = ['--cfg-options', f'data_root={root}',
            f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', f'val_evaluator.ann_file={ann}',
            f'model.roi_head.bbox_head.text_embeddings={synthetic_det["text_embeddings"]}',
            'train_dataloader.batch_size=2']
    work = str(tmp_path / 'work')
    train = load_tool('tools/train.py')
    runner = train.main([CFG, '--work-dir', work] + opts)
    with open(synthetic_det['train_base']) as f:
        n_train = len(json.load(f)['images'])  # images with >= 1 base box
    assert 0 < n_train <= 8 and runner.iter == math.ceil(n_train / 2)  # one epoch at batch 2
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    # test with an extra DumpResults so that the metric can be recomputed from the raw predictions
    dump = str(tmp_path / 'dets.pkl')
    cfg = tmp_path / 'dump_cfg.py'
    cfg.write_text(f'_base_ = [{CFG!r}]\n'
                   f'test_evaluator = [dict(type="OVCocoAP50Metric", ann_file={ann!r}, metric="bbox", '
                   f'novel_classes={list(NOVEL)!r}), dict(type="DumpResults", out_file_path={dump!r})]\n')
    test = load_tool('tools/test.py')
    metrics = test.main([str(cfg), ckpt, '--work-dir', str(tmp_path / 'test')] + opts)
    from mmengine.config import Config
    classes = Config.fromfile(CFG).classes
    per, ap50, n = pycocotools_ap50(ann, dump, classes)
    assert n == 4  # every val image once
    novel = np.nanmean([per[c] for c in NOVEL])
    base = np.nanmean([per[c] for c in classes if c not in NOVEL])
    assert metrics['coco/novel_ap50'] == pytest.approx(novel, abs=6e-4)  # mmdet's OVCocoMetric: fractions
    assert metrics['coco/base_ap50'] == pytest.approx(base, abs=6e-4)
    assert metrics['coco/bbox_mAP_50'] == pytest.approx(ap50, abs=6e-4)
