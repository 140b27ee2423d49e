"""OVSegInferencer / tools/infer.py zeroshot with the tiny CorrCLIP config (tiny random CLIP + tiny random DINO,
colour-quantised region masks): a free vocabulary gives the label map of the config's own model built with that
vocabulary; the region path and the vote matter (a model without them predicts something else)."""
import os.path as osp

import numpy as np
import torch

from .conftest import REPO, free_vocabulary_equals_config_model, seg_forward

CC_CFG = osp.join(REPO, 'configs', 'zeroshot_seg',
                  'corrclip_tiny-eva02_tiny-dino-b8_color-masks_ov-scenes-synthetic.py')


def test_corrclip_free_vocabulary(photo, tmp_path):
    from declip_mm.apis import OVSegInferencer
    inf = OVSegInferencer(CC_CFG, None, device='cpu', cache_dir='', show_progress=False)
    assert type(inf.model.proxy).__name__ == 'CorrCLIPAttention'
    ref, cfg, ref_sample = free_vocabulary_equals_config_model(inf, CC_CFG, photo, tmp_path)
    # the regions matter: the same model with every pixel unsegmented predicts other logits
    import mmcv
    h, w = mmcv.imread(photo).shape[:2]
    ref.proxy.mask_source = lambda p: np.zeros((h, w), np.int32)
    assert not torch.equal(seg_forward(ref, cfg, photo).seg_logits.data, ref_sample.seg_logits.data)
    assert len(list((tmp_path / 'vis').glob('*'))) == 1


def test_infer_tool_zeroshot_corrclip(photo, tmp_path):
    import subprocess
    import sys
    out = tmp_path / 'out'
    r = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'infer.py'), 'zeroshot', CC_CFG, photo,
                        '--texts', 'sky,grass', '--device', 'cpu', '--out-dir', str(out), '--cache-dir', ''],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list(out.rglob('*.png')) or list(out.rglob('*.jpg'))
