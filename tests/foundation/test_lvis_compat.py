"""The lvis/numpy-2 compatibility spot: LVISEval (used by mmdet's LVISMetric) runs after importing declip_mm."""
import json

import numpy as np
import pytest

import declip_mm  # noqa: F401  (applies declip_mm.utils.compat)


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


def test_lvis_eval_runs_under_numpy2(tmp_path):
    from lvis import LVIS, LVISEval, LVISResults
    assert np.float is float
    _lvis_gt(tmp_path / 'gt.json')
    gt = LVIS(str(tmp_path / 'gt.json'))
    dets = [dict(image_id=1, category_id=1, bbox=[10, 10, 30, 30], score=0.9),
            dict(image_id=2, category_id=2, bbox=[0, 0, 10, 10], score=0.8)]
    ev = LVISEval(gt, LVISResults(gt, dets), 'bbox')
    ev.run()
    res = ev.get_results()
    assert res['APr'] == pytest.approx(1.0)  # the rare class is found exactly
    assert res['APf'] == pytest.approx(0.0)  # the frequent one is missed


def test_mmengine_checkpoints_load_under_torch_weights_only_default(tmp_path):
    """mmengine run-state checkpoints (HistoryBuffer + numpy in the message hub) load although torch now defaults to
    weights_only=True; a plain weights file takes the safe path (no full unpickler)."""
    import torch
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import CheckpointLoader

    from declip_mm.utils.compat import load_mmengine_checkpoint
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('iter', np.int64(7))
    ckpt = dict(meta=dict(epoch=1, iter=7, seed=np.int64(3)), state_dict={'w': torch.ones(2)},
                message_hub=hub.state_dict())
    torch.save(ckpt, tmp_path / 'epoch_1.pth')
    with pytest.raises(Exception):  # what torch alone does with mmengine's file
        torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    out = CheckpointLoader.load_checkpoint(str(tmp_path / 'epoch_1.pth'), map_location='cpu')
    assert torch.equal(out['state_dict']['w'], torch.ones(2)) and out['meta']['seed'] == 3
    buf = out['message_hub']['log_scalars']['train/loss']
    assert buf.mean() == pytest.approx(1.0)
    assert load_mmengine_checkpoint(str(tmp_path / 'epoch_1.pth'))['meta']['iter'] == 7
    torch.save({'state_dict': {'w': torch.ones(3)}, 'meta': {'seed': np.int64(1), 'arr': np.zeros(2)}},
               tmp_path / 'plain.pth')
    real_load = torch.load
    calls = []

    def spy(*a, **k):
        calls.append(k.get('weights_only'))
        return real_load(*a, **k)
    torch.load = spy
    try:
        out = load_mmengine_checkpoint(str(tmp_path / 'plain.pth'))
    finally:
        torch.load = real_load
    assert calls == [True] and out['meta']['seed'] == 1
