"""OVSegInferencer / tools/infer.py zeroshot with a ProxyCLIP config (tiny random CLIP + tiny random DINO): a free
vocabulary gives the label map of the config's own model built with that vocabulary (which catches a vocabulary
switch that leaves the proxy path or its VFM out, e.g. a model rebuilt without ``proxy``)."""
import os.path as osp

import numpy as np
import torch

from .conftest import REPO, build, load_cfg, seg_forward

PX_CFG = osp.join(REPO, 'configs', 'zeroshot_seg', 'proxyclip_tiny-eva02_tiny-dino-b8_ov-scenes-synthetic.py')


def test_proxyclip_free_vocabulary(photo, tmp_path):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(PX_CFG, None, device='cpu', cache_dir='', show_progress=False)
    assert inf.model.proxy is not None
    res = inf(photo, texts=[['person', 'man'], 'wall', 'flag'], out_dir=str(tmp_path))
    cfg = load_cfg(PX_CFG)
    cfg.model.class_names = [['person', 'man'], ['wall'], ['flag']]
    ref = build(cfg.model, 'mmseg')
    ref.load_state_dict(inf.model.state_dict())  # the same random tiny CLIP and VFM
    ref.eval()
    ref.save_seg_logits = True
    ref_sample = seg_forward(ref, cfg, photo)
    expect = ref_sample.pred_sem_seg.data[0].numpy()
    got = res['predictions'][0]['sem_seg']
    assert np.array_equal(got, expect) and len(np.unique(expect)) > 1
    assert res['classes'] == ['person', 'wall', 'flag']
    # the proxy path matters: the same model without the VFM attention predicts something else
    ref.proxy = None
    assert not torch.equal(seg_forward(ref, cfg, photo).seg_logits.data, ref_sample.seg_logits.data)
    assert len(list((tmp_path / 'vis').glob('*'))) == 1
