"""The tiny OV-DQUO config learns on the synthetic shapes set, and runs through tools/train.py / tools/test.py.

Learning: the class score of OV-DQUO is CLIP's alone, and the tiny CLIP is random, so its text rows are replaced by
class prototypes (mean CLIP region embedding of each class's boxes on training images, the wildcard = their mean):
CLIP then tells the shapes apart and what the test measures is the detector (objectness, boxes, queries) learning.
The training loss falls and COCO AP50 on held-out images rises above the untrained model's (which starts near 0).
Training runs with the config's open-world pseudo boxes (annotations/train_pseudo.json: the novel objects and a few
background boxes) through the pseudo-aware pipeline: wildcard queries, wildcard matching and denoising queries
from the pseudo boxes are all active.
"""
import contextlib
import copy
import io
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .conftest import REPO, load_tool

CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')
RN_CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-r50-clip_1xb4-1e_ov-shapes-synthetic.py')  # the ResNet CLIP path


def build(root, cfg_path=CFG):
    from mmdet.registry import DATASETS, MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import declip_mm  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(cfg_path)
    cfg.model.text_embeddings = None
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='random unit vectors'):
        model = MODELS.build(cfg.model)
    model.init_weights()

    def dataset(loader, ann=None, prefix=None):
        d = copy.deepcopy(cfg[loader].dataset)
        d.data_root = root
        if ann:
            d.ann_file, d.data_prefix = ann, dict(img=prefix)
        return DATASETS.build(d)
    return model, dataset('train_dataloader'), dataset('val_dataloader'), \
        dataset('val_dataloader', 'annotations/train_all.json', 'images/train/')


def set_prototype_text(model, protos):
    from mmengine.dataset import pseudo_collate
    K = len(model.class_names)
    acc, cnt = torch.zeros(K, model.text_embeddings.shape[1]), torch.zeros(K)
    model.eval()
    with torch.no_grad():
        for i in range(len(protos)):
            data = model.data_preprocessor(pseudo_collate([protos[i]]), False)
            s = data['data_samples'][0]
            b = s.gt_instances.bboxes
            if not len(b):
                continue
            h, w = s.img_shape
            boxes = torch.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h, (b[:, 2] - b[:, 0]) / w,
                                 (b[:, 3] - b[:, 1]) / h], -1)
            _, clip = model.extract_feat(data['inputs'])
            e = model.region_embedder(clip, boxes[None], [s.img_shape], s.batch_input_shape)[0]
            acc.index_add_(0, s.gt_instances.labels, e)
            cnt.index_add_(0, s.gt_instances.labels, torch.ones(len(e)))
    assert (cnt > 0).all()
    model.text_embeddings.copy_(F.normalize(acc / cnt[:, None], dim=-1))
    model.wildcard_embedding.copy_(F.normalize(acc.sum(0), dim=0))


def coco_ap50(model, val, ann_file):
    from mmengine.dataset import pseudo_collate
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    name2id = {c['name']: c['id'] for c in gt.dataset['categories']}
    dets = []
    model.eval()
    with torch.no_grad():
        for i in range(len(val)):
            data = model.data_preprocessor(pseudo_collate([val[i]]), False)
            r = model.predict(data['inputs'], data['data_samples'])[0]
            p = r.pred_instances
            for (x1, y1, x2, y2), sc, lab in zip(p.bboxes.tolist(), p.scores.tolist(), p.labels.tolist()):
                dets.append(dict(image_id=r.img_id, category_id=name2id[model.class_names[lab]],
                                 bbox=[x1, y1, x2 - x1, y2 - y1], score=sc))
    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


# ResNet: the random tiny CLIP ResNet separates the shapes less well than the tiny EVA (its C4 -> res5 -> attention
# pool embeddings make the prototypes), so the AP50 gain asked for is smaller.  Seen here: 0.000 -> 0.029 (1 or 2
# OpenMP threads; 72 iterations: 0.057 / 0.027 by thread count, so the trajectory depends on float summation order):
# the bar is a third of that, still failing a detector that does not train (AP50 stays 0)
@pytest.mark.parametrize('cfg_path,iters,gain', [(CFG, 36, 0.05), (RN_CFG, 36, 0.01)], ids=['vit', 'resnet'])
def test_tiny_ovdquo_learns(tmp_path, cfg_path, iters, gain):
    from declip_mm.datasets.synthetic_det import make_synthetic_ov_det
    from mmengine.dataset import pseudo_collate
    import random
    random.seed(0)  # the pipeline's random flips / resizes / crops: one run = one number
    np.random.seed(0)
    root = str(tmp_path / 'shapes') + '/'
    make_synthetic_ov_det(root, num_train=32, num_val=8, size=128, seed=0)
    model, train, val, protos = build(root, cfg_path)
    set_prototype_text(model, protos)
    ap_before = coco_ap50(model, val, root + 'annotations/val.json')
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    history, n_pseudo = [], 0
    model.train()
    for _ in range(iters):
        idx = torch.randperm(len(train), generator=g)[:2].tolist()
        data = model.data_preprocessor(pseudo_collate([train[i] for i in idx]), True)
        n_pseudo += sum(int(s.gt_instances.pseudo.sum()) for s in data['data_samples'])
        losses = model.loss(data['inputs'], data['data_samples'])
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(float(loss.detach()))
    ap_after = coco_ap50(model, val, root + 'annotations/val.json')
    first, last = np.mean(history[:10]), np.mean(history[-10:])
    print(f'loss {first:.2f} -> {last:.2f}; AP50 {ap_before:.3f} -> {ap_after:.3f}; {n_pseudo} pseudo boxes')
    assert n_pseudo > iters  # the pseudo boxes reach the model (more than one per batch on average)
    assert last < 0.8 * first
    assert ap_after > ap_before + gain


def test_tiny_config_train_and_test_tools(synthetic_det, tmp_path):
    """tools/train.py (1 epoch) and tools/test.py on the tiny config: OVClassCheckHook, the data preprocessor's
    fixed-size padding, the OV-COCO AP50 metric with base / novel splits."""
    root = synthetic_det['root'] + '/'
    ann = f'{root}annotations/val.json'
    opts = ['--cfg-options', f'data_root={root}', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
            f'model.text_embeddings={synthetic_det["text_embeddings"]}',
            'train_cfg.val_interval=2']
    work = str(tmp_path / 'work')
    runner = load_tool('tools/train.py').main([CFG, '--work-dir', work] + opts)
    assert runner.iter >= 1 and osp.isfile(osp.join(work, 'epoch_1.pth'))
    metrics = load_tool('tools/test.py').main([CFG, osp.join(work, 'epoch_1.pth'), '--work-dir',
                                                str(tmp_path / 'test')] + opts)
    assert {'coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP_50'} <= set(metrics)
