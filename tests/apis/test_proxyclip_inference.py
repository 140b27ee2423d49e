"""OVSegInferencer / tools/infer.py zeroshot with a ProxyCLIP config (tiny random CLIP + tiny random DINO): a free
vocabulary gives the label map of the config's own model built with that vocabulary (which catches a vocabulary
switch that leaves the proxy path or its VFM out, e.g. a model rebuilt without ``proxy``)."""
import os.path as osp

import torch

from .conftest import REPO, free_vocabulary_equals_config_model, seg_forward

PX_CFG = osp.join(REPO, 'configs', 'zeroshot_seg', 'proxyclip_tiny-eva02_tiny-dino-b8_ov-scenes-synthetic.py')


def test_proxyclip_free_vocabulary(photo, tmp_path):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(PX_CFG, None, device='cpu', cache_dir='', show_progress=False)
    assert inf.model.proxy is not None
    ref, cfg, ref_sample = free_vocabulary_equals_config_model(inf, PX_CFG, photo, tmp_path)
    # the proxy path matters: the same model without the VFM attention predicts something else
    ref.proxy = None
    assert not torch.equal(seg_forward(ref, cfg, photo).seg_logits.data, ref_sample.seg_logits.data)
    assert len(list((tmp_path / 'vis').glob('*'))) == 1
