"""CAT-Seg loss: BCE with ignored pixels as all-zero targets kept in the mean (docs/catseg.md worked value)."""
import math

import pytest
import torch
import torch.nn.functional as F

from declip_mm.models.decode_heads.catseg_head import catseg_bce_loss


def test_worked_value_072009():
    # 2 classes; pixel 0 has class 0, pixel 1 is ignored; both have logits (2, -1)
    logits = torch.tensor([[[[2.0, 2.0]], [[-1.0, -1.0]]]])  # (1, 2, 1, 2)
    gt = torch.tensor([[[0, 255]]])
    loss = catseg_bce_loss(logits, gt, ignore_index=255)
    sp = lambda z: math.log1p(math.exp(z))  # noqa: E731  softplus
    hand = (sp(-2) + sp(-1) + sp(2) + sp(-1)) / 4
    assert loss.item() == pytest.approx(hand, abs=1e-6)
    assert loss.item() == pytest.approx(0.72009, abs=1e-5)
    assert loss.item() != pytest.approx(0.22009, abs=1e-3)  # the value if ignored pixels were dropped


def test_matches_direct_bce_with_upsampling():
    logits = torch.randn(2, 5, 6, 6)
    gt = torch.randint(0, 5, (2, 24, 24))
    gt[0, :3] = 255
    up = F.interpolate(logits, size=(24, 24), mode='bilinear', align_corners=False)
    target = torch.zeros_like(up)
    for b in range(2):
        for y in range(24):
            for x in range(24):
                if gt[b, y, x] != 255:
                    target[b, gt[b, y, x], y, x] = 1
    ref = F.binary_cross_entropy_with_logits(up, target)
    assert torch.allclose(catseg_bce_loss(logits, gt), ref, atol=1e-6)


def test_label_outside_class_list_is_an_error():
    with pytest.raises(ValueError, match='class-name list'):
        catseg_bce_loss(torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), 7))
