"""End to end: the tiny config trains and tests through tools/train.py / tools/test.py on CPU."""
import json
import math
import os.path as osp

from .conftest import REPO, load_tool

CFG = osp.join(REPO, 'configs/fvit/fvit_tiny_synthetic.py')


def test_tiny_config_train_and_test(synthetic_det, tmp_path, monkeypatch):
    root = synthetic_det['root'] + '/'
    opts = ['--cfg-options', f'data_root={root}',
            f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}annotations/val.json', f'test_evaluator.ann_file={root}annotations/val.json',
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
    test = load_tool('tools/test.py')
    metrics = test.main([CFG, ckpt, '--work-dir', str(tmp_path / 'test')] + opts)
    for k in ('coco/novel_ap50', 'coco/base_ap50', 'coco/bbox_mAP_50'):  # mmdet's OVCocoMetric: fractions
        assert k in metrics and 0.0 <= metrics[k] <= 1.0
