"""F-ViT's novel-masked, background-weighted CE (docs/fvit.md section 9, test 7)."""
import math

import pytest
import torch

from declip_mm.models.roi_heads import ZeroWeightMaskedCrossEntropyLoss


def test_worked_values_and_novel_excluded():
    # classes (base, novel) + background; weights [1, 0, 0.6]
    loss = ZeroWeightMaskedCrossEntropyLoss(class_weight=[1.0, 0.0], bg_weight=0.6)
    logits = torch.tensor([[2.0, 5.0, 1.0], [2.0, 5.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 2])  # base, background
    # per-sample losses with the novel column at -inf
    l_base = math.log(1 + math.exp(-1))            # 0.3133
    l_bg = 0.6 * (math.log(1 + math.exp(1)))        # 0.6 * 1.3133 = 0.7880
    per = loss(logits, labels, reduction_override='none')
    assert per.tolist() == pytest.approx([l_base, l_bg], abs=1e-4)
    assert per.tolist() == pytest.approx([0.3133, 0.7880], abs=1e-4)
    # mmdet BBoxHead passes avg_factor = number of sampled RoIs -> sum / 2
    out = loss(logits, labels, avg_factor=2)
    assert out.item() == pytest.approx(0.5506, abs=1e-4)
    out.backward()
    assert torch.all(logits.grad[:, 1] == 0), 'novel logit must get no gradient'
    assert torch.all(logits.grad[:, 0] != 0)


def test_differs_from_plain_weighted_ce():
    """Without masking the novel logit (5) would dominate the softmax: the result must differ."""
    plain = torch.nn.functional.cross_entropy(torch.tensor([[2.0, 5.0, 1.0]]), torch.tensor([0]))
    masked = ZeroWeightMaskedCrossEntropyLoss(class_weight=[1.0, 0.0, 0.6])(
        torch.tensor([[2.0, 5.0, 1.0]]), torch.tensor([0]), avg_factor=1)
    assert plain.item() > 3.0 and masked.item() == pytest.approx(0.3133, abs=1e-4)


def test_novel_label_gives_zero_not_nan():
    loss = ZeroWeightMaskedCrossEntropyLoss(class_weight=[1.0, 0.0], bg_weight=0.6)
    out = loss(torch.tensor([[2.0, 5.0, 1.0]]), torch.tensor([1]), reduction_override='none')
    assert torch.isfinite(out).all() and out.item() == 0.0


def test_class_weight_file_and_length_check():
    loss = ZeroWeightMaskedCrossEntropyLoss(class_weight='ov_coco/class_weight.json', bg_weight=0.6)
    assert len(loss.class_weight) == 66 and loss.class_weight[-1] == 0.6
    assert sum(w == 0 for w in loss.class_weight) == 17
    with pytest.raises(ValueError, match='class weights'):
        loss(torch.zeros(2, 10), torch.tensor([0, 1]))
    lvis = ZeroWeightMaskedCrossEntropyLoss(class_weight='ov_lvis/class_weight_norare.json', bg_weight=0.9)
    assert len(lvis.class_weight) == 1204 and len(lvis.zero_weight_columns) == 337
