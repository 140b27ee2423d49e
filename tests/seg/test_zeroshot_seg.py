"""Training-free segmentor: window grid, padding, multi-name max, thresholds, batch > 1."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from declip_mm.models.segmentors.zeroshot_seg import slide_grid, symmetric_pad

from .conftest import TINY_ZS_CFG, build_seg_model, tiny_model_cfg


@pytest.fixture(scope='module')
def zs():
    torch.manual_seed(0)
    return build_seg_model(tiny_model_cfg(TINY_ZS_CFG)).eval()


def test_grid_and_padding_by_hand():
    # 448 x 597 image, window 336 / stride 112: rows [0, 112], cols [0, 112, 224, 261 (shifted to the border)]
    boxes = slide_grid(448, 597, 336, 112)
    assert [(b[0], b[2]) for b in boxes] == [(y, x) for y in (0, 112) for x in (0, 112, 224, 261)]
    assert all(b[1] - b[0] == 336 and b[3] - b[2] == 336 for b in boxes)
    assert slide_grid(100, 90, 336, 112) == [(0, 100, 0, 90)]  # small image: one crop, no padding to 336
    assert symmetric_pad(336, 336, 16) == (0, 0, 0, 0)
    assert symmetric_pad(100, 90, 16) == (3, 3, 6, 6)  # (l, r, t, b): 90 -> 96, 100 -> 112


def test_multi_name_max_and_threshold(zs):
    m = copy.deepcopy(zs)
    m.name_sets = [['bg a', 'bg b'], ['cat'], ['dog', 'puppy']]
    m.query_names = ['bg a', 'bg b', 'cat', 'dog', 'puppy']
    m.query_idx = torch.tensor([0, 0, 1, 2, 2])
    m.num_classes = 3
    m.logit_scale = 1.0
    logits = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 3.0], [2.0, 0.0]])[:, :, None]  # (Q=5, 2, 1)
    m.prob_thd = 0.0
    label, probs = m.postprocess_probs(logits)
    sm = logits.softmax(0)
    hand = torch.stack([sm[0:2].max(0)[0], sm[2], sm[3:5].max(0)[0]])
    assert torch.allclose(probs, hand)
    assert label.flatten().tolist() == [2, 2]
    m.prob_thd = 0.5  # pixel 0 best prob = e^2/(e^2+e+3) ~ 0.56 keeps class 2; pixel 1 ~ 0.83 keeps class 2
    assert m.postprocess_probs(logits)[0].flatten().tolist() == [2, 2]
    m.prob_thd = 0.6
    assert m.postprocess_probs(logits)[0].flatten().tolist() == [0, 2]  # below threshold -> background 0


def test_slide_logits_average_overlaps(zs):
    m = copy.deepcopy(zs)
    calls = []

    def fake_crop_logits(crops, text, ids=None):  # crop_logits's signature (no region ids here)
        calls.append(crops.shape)
        return crops[:, :1].expand(-1, text.shape[0], -1, -1)  # logits = first channel value
    m.crop_logits = fake_crop_logits
    img = torch.zeros(3, 96, 128)
    img[0] = torch.arange(128.0)[None].expand(96, -1)
    out = m.slide_logits(img, torch.zeros(4, 32))
    assert torch.allclose(out[2], img[0])  # identical per-pixel crop values average to themselves
    assert all(s[-2:] == (64, 64) for s in calls)


def test_crop_padding_is_cut(zs):
    torch.manual_seed(1)
    text = zs.query_embeddings()
    crop = torch.randn(1, 3, 40, 56)
    out = zs.crop_logits(crop, text)
    assert out.shape == (1, len(zs.query_names), 40, 56)
    l, r, t, b = symmetric_pad(40, 56, 16)
    padded = F.pad(crop, (l, r, t, b))
    feats = F.normalize(zs.backbone.extract(padded, ('dense', ))['dense'], dim=1)
    ref = F.interpolate(torch.einsum('nchw,qc->nqhw', feats, text), size=padded.shape[-2:], mode='bilinear',
                        align_corners=False)[:, :, t:t + 40, l:l + 56]
    assert torch.allclose(out, ref, atol=1e-5)


def test_batch_of_two_equals_each_alone(zs):
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 112, 150), generator=g, dtype=torch.uint8),
            torch.randint(0, 256, (3, 100, 120), generator=g, dtype=torch.uint8)]
    metas = [dict(img_shape=(112, 150), ori_shape=(120, 160)), dict(img_shape=(100, 120), ori_shape=(100, 120))]
    zs.save_seg_logits = True

    def run(idx):
        batch = dict(inputs=[imgs[i] for i in idx], data_samples=[SegDataSample(metainfo=metas[i]) for i in idx])
        d = zs.data_preprocessor(batch, False)
        return zs.predict(d['inputs'], d['data_samples'])
    both = run([0, 1])
    for i in range(2):
        alone = run([i])[0]
        assert both[i].pred_sem_seg.data.shape[-2:] == metas[i]['ori_shape']
        assert torch.allclose(both[i].seg_logits.data, alone.seg_logits.data, atol=1e-5)
    zs.save_seg_logits = False
