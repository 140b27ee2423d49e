"""OV-DQUO losses pinned against plain-torch formulas written here (and the hand values of the method notes):
varifocal loss with the detached probability, IoU targets and pseudo weights; box losses on true matches only; the
classification-only denoising loss and its normaliser (true matches x groups)."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

from declip_mm.models.losses import ov_varifocal_loss


def bce(z, t):
    return torch.clamp(z, min=0) - z * t + torch.log1p(torch.exp(-z.abs()))


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def xyxy_to_cxcywh(b):
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


def iou_giou(a, b):
    """Aligned IoU and GIoU of xyxy boxes."""
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).prod(-1) + (b[:, 2:] - b[:, :2]).prod(-1) - inter
    iou = inter / union
    enc = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).clamp(min=0).prod(-1)
    return iou, iou - (enc - union) / enc


# ------------------------------------------------------------------ hand values (one query, z = 0)
def test_varifocal_hand_values():
    z = torch.zeros(1)
    ln2 = math.log(2)
    true = ov_varifocal_loss(z, torch.tensor([0.8]), torch.tensor([True]))
    unmatched = ov_varifocal_loss(z, torch.tensor([0.0]), torch.tensor([False]))
    pseudo = ov_varifocal_loss(z, torch.tensor([0.8]), torch.tensor([True]), weight=torch.tensor([0.64 ** 0.5]))
    assert float(true) == pytest.approx(ln2 * 0.8, abs=1e-4) and float(true) == pytest.approx(0.5545, abs=1e-4)
    assert float(unmatched) == pytest.approx(0.1300, abs=1e-4)
    assert float(pseudo) == pytest.approx(0.4436, abs=1e-4)
    # a matched query at IoU 0 gets no loss at all (OV-DQUO); the option makes it a negative
    iou0 = ov_varifocal_loss(z, torch.tensor([0.0]), torch.tensor([True]))
    iou0_neg = ov_varifocal_loss(z, torch.tensor([0.0]), torch.tensor([True]), zero_iou_negative=True)
    assert float(iou0) == 0.0 and float(iou0_neg) == pytest.approx(0.1300, abs=1e-4)


def test_varifocal_gradient_uses_detached_probability():
    """d/dz of BCE(z, t) * w with w held constant: (sigmoid(z) - t) * w.  With a non-detached p the weight's own
    derivative adds a term (mmdet's VarifocalLoss)."""
    z = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    t = torch.tensor([0.0, 0.7, 0.0])
    m = torch.tensor([False, True, False])
    ov_varifocal_loss(z, t, m).sum().backward()
    p = torch.sigmoid(z.detach())
    w = 0.75 * p ** 2 * (~m) + t
    assert torch.allclose(z.grad, (p - t) * w, atol=1e-7)
    z2 = z.detach().clone().requires_grad_(True)
    ov_varifocal_loss(z2, t, m, detach_prob=False).sum().backward()
    assert not torch.allclose(z2.grad, z.grad, atol=1e-4)


def test_dn_focal_hand_values():
    from mmdet.models.losses import FocalLoss
    focal = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0, reduction='none')
    z = torch.zeros(2, 1)
    loss = focal(z, torch.tensor([0, 1])).flatten()  # label 0 = the objectness class, 1 = background
    assert float(loss[0]) == pytest.approx(0.25 * 0.25 * math.log(2), abs=1e-4) == pytest.approx(0.0433, abs=1e-4)
    assert float(loss[1]) == pytest.approx(0.75 * 0.25 * math.log(2), abs=1e-4) == pytest.approx(0.1300, abs=1e-4)


# ------------------------------------------------------------------ head losses
def make_head(**kw):
    from mmdet.registry import MODELS
    import declip_mm  # noqa: F401
    cfg = dict(type='OVDQUOHead', num_classes=1, embed_dims=8, num_pred_layer=3, as_two_stage=True,
               loss_cls=dict(type='OVVarifocalLoss', alpha=0.75, gamma=2.0, loss_weight=2.0),
               loss_bbox=dict(type='L1Loss', loss_weight=5.0), loss_iou=dict(type='GIoULoss', loss_weight=2.0),
               loss_dn_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
               train_cfg=dict(assigner=dict(type='WildcardHungarianAssigner', match_costs=[
                   dict(type='FocalLossCost', weight=2.0, eps=1e-7),
                   dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                   dict(type='IoUCost', iou_mode='giou', weight=2.0)]),
                   enc_assigner=dict(type='HungarianAssigner', match_costs=[
                       dict(type='FocalLossCost', weight=2.0, eps=1e-8),
                       dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                       dict(type='IoUCost', iou_mode='giou', weight=2.0)])))
    cfg.update(kw)
    return MODELS.build(cfg)


METAS = [dict(img_shape=(100, 200)), dict(img_shape=(80, 120))]


def layer_case():
    torch.manual_seed(0)
    cls = torch.randn(2, 5, 1)
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.30, 0.40, 0.20, 0.30], [0.70, 0.30, 0.20, 0.20],
                           [0.1, 0.9, 0.1, 0.1], [0.5, 0.5, 0.9, 0.9]],
                          [[0.40, 0.50, 0.30, 0.40], [0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1],
                           [0.85, 0.85, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5]]])
    # image 0: g0 true (q1), g1 pseudo w=0.64 (q2); image 1: g0 true (q0), g1 true matched at IoU 0 (q3)
    gts = [InstanceData(bboxes=torch.tensor([[40., 25., 100., 60.], [125., 15., 165., 45.]]),
                        labels=torch.tensor([1, -1]), pseudo=torch.tensor([False, True]),
                        pseudo_weights=torch.tensor([1.0, 0.64])),
           InstanceData(bboxes=torch.tensor([[30., 20., 66., 56.], [5., 5., 20., 20.]]),
                        labels=torch.tensor([2, 0]), pseudo=torch.tensor([False, False]),
                        pseudo_weights=torch.ones(2))]
    assigns = [(torch.tensor([1, 2]), torch.tensor([0, 1])), (torch.tensor([0, 3]), torch.tensor([0, 1]))]
    return cls, boxes, gts, assigns


def expected_layer(cls, boxes, gts, assigns, n_true, n_pseudo, zero_iou_negative=False):
    target = torch.zeros(cls.shape[:2])
    matched = torch.zeros(cls.shape[:2], dtype=torch.bool)
    qw = torch.ones(cls.shape[:2])
    l1 = giou_sum = 0.0
    for b, ((q, g), gt, meta) in enumerate(zip(assigns, gts, METAS)):
        h, w = meta['img_shape']
        f = torch.tensor([w, h, w, h], dtype=torch.float32)
        gn = gt.bboxes[g] / f
        iou, giou = iou_giou(cxcywh_to_xyxy(boxes[b, q]), gn)
        target[b, q] = iou
        matched[b, q] = True
        ps = gt.pseudo[g]
        qw[b, q[ps]] = gt.pseudo_weights[g[ps]] ** 0.5
        l1 = l1 + (boxes[b, q[~ps]] - xyxy_to_cxcywh(gn[~ps])).abs().sum()
        giou_sum = giou_sum + (1 - giou[~ps]).sum()
    z = cls[..., 0]
    p = torch.sigmoid(z).detach()
    m = matched.float() * ((target > 0).float() if zero_iou_negative else 1.0)
    vfl = bce(z, target) * (0.75 * p ** 2 * (1 - m) + target) * qw
    return 2.0 * vfl.sum() / (n_true + n_pseudo), 5.0 * l1 / n_true, 2.0 * giou_sum / n_true


@pytest.mark.parametrize('zero_iou_negative', [False, True])
def test_layer_losses_against_formula(zero_iou_negative):
    head = make_head(loss_cls=dict(type='OVVarifocalLoss', loss_weight=2.0, zero_iou_negative=zero_iou_negative))
    cls, boxes, gts, assigns = layer_case()
    cls = cls.requires_grad_(True)
    l_cls, l_bbox, l_iou = head.layer_losses(cls, boxes, assigns, gts, METAS, n_true=3.0, n_pseudo=1.0)
    e_cls, e_bbox, e_iou = expected_layer(cls.detach(), boxes, gts, assigns, 3.0, 1.0, zero_iou_negative)
    # mmdet's weighted losses divide by (avg_factor + float32 eps): relative 1e-7
    assert float(l_cls.detach()) == pytest.approx(float(e_cls), rel=1e-6)
    assert float(l_bbox) == pytest.approx(float(e_bbox), rel=1e-6)  # pseudo pair (image 0, q2) excluded
    assert float(l_iou) == pytest.approx(float(e_iou), rel=1e-6)
    l_cls.backward()
    z = cls.detach()[..., 0].clone().requires_grad_(True)
    expected_layer(z[..., None], boxes, gts, assigns, 3.0, 1.0, zero_iou_negative)[0].backward()
    assert torch.allclose(cls.grad[..., 0], z.grad, atol=1e-7)


def test_dn_loss_normalised_by_true_matches_times_groups():
    head = make_head()
    torch.manual_seed(1)
    L, B, M, G = 2, 2, 2, 3
    P = 2 * M * G
    dn_cls = torch.randn(L, B, P, 1)
    weights = [torch.tensor([0.64, 0.25]), torch.tensor([0.81])]
    meta = dict(num_denoising_queries=P, num_denoising_groups=G, target_weights=weights)
    n_true = 2.0  # 3 denoising targets: a normaliser by targets x groups would differ
    losses = head.loss_dn(dn_cls, meta, n_true)
    assert len(losses) == head.num_decoder_layers == 2
    for li in range(L):
        total = 0.0
        for b in range(B):
            z = dn_cls[li, b, :, 0]
            p = torch.sigmoid(z)
            y = torch.zeros(P)
            wq = torch.ones(P)
            for g in range(G):
                for t, w in enumerate(weights[b]):
                    y[g * 2 * M + t] = 1  # positive half of group g; negatives and padding stay 0
                    wq[g * 2 * M + t] = w ** 0.5
            fl = y * 0.25 * (1 - p) ** 2 * -torch.log(p) + (1 - y) * 0.75 * p ** 2 * -torch.log(1 - p)
            total = total + (fl * wq).sum()
        assert float(losses[li]) == pytest.approx(2.0 * float(total) / (n_true * G), rel=1e-6)
    # the corrected normaliser divides by the positive denoising slots instead
    head.dn_normalizer = 'dn_positives'
    alt = head.loss_dn(dn_cls, meta, n_true)
    assert float(alt[0]) == pytest.approx(float(losses[0]) * (n_true * G) / (3 * G), rel=1e-6)


def test_dn_loss_without_denoising_queries_is_zero_and_keeps_graph():
    head = make_head()
    losses = head.loss_dn(torch.zeros(2, 2, 0, 1), dict(num_denoising_queries=0, num_denoising_groups=1,
                                                           target_weights=[torch.zeros(0)] * 2), 1.0)
    assert [float(x) for x in losses] == [0.0, 0.0] and all(x.requires_grad for x in losses)


def test_normalisers_come_from_the_last_layer_and_are_clamped():
    head = make_head()
    gts = [InstanceData(bboxes=torch.zeros(3, 4), labels=torch.tensor([0, -1, -1]),
                        pseudo=torch.tensor([False, True, True]), pseudo_weights=torch.ones(3))]
    assigns = [(torch.tensor([0, 4, 7]), torch.tensor([1, 0, 2]))]
    assert head.num_matches(assigns, gts, torch.zeros(1)) == (1.0, 2.0)
    assert head.num_matches([(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))], gts,
                            torch.zeros(1)) == (1.0, 1.0)


def test_full_head_loss_keys_and_totals():
    """loss_by_feat on two decoder layers + encoder: the auxiliary layer and the encoder reuse the LAST layer's
    normalisers (checked by recomputing each term with the formula on the assigner's own pairs)."""
    head = make_head()
    cls, boxes, gts, _ = layer_case()
    torch.manual_seed(3)
    all_cls = torch.stack([cls, cls + 0.3 * torch.randn_like(cls)])
    all_boxes = torch.stack([boxes, (boxes + 0.02 * torch.randn_like(boxes)).clamp(0.05, 0.95)])
    P = 4
    dn_meta = dict(num_denoising_queries=P, num_denoising_groups=1,
                   target_weights=[torch.tensor([0.64]), torch.zeros(0)])
    all_cls = torch.cat([torch.randn(2, 2, P, 1), all_cls], 2)
    all_boxes = torch.cat([torch.rand(2, 2, P, 4) * 0.5 + 0.25, all_boxes], 2)
    query_classes = torch.tensor([[0, 1, 3, 3, 3], [2, 2, 1, 0, 0]])
    wildcard = 3
    losses = head.loss_by_feat(all_cls, all_boxes, cls, boxes, gts, METAS, dn_meta, query_classes, wildcard)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_iou', 'd0.loss_cls', 'd0.loss_bbox', 'd0.loss_iou',
                           'enc_loss_cls', 'enc_loss_bbox', 'enc_loss_iou', 'dn_loss_cls', 'd0.dn_loss_cls'}
    last = head.assign_layer(all_cls[1, :, P:], all_boxes[1, :, P:], gts, METAS, query_classes, wildcard)
    n_pseudo = sum(int(gt.pseudo[g].sum()) for (_, g), gt in zip(last, gts))
    n_true = max(sum(len(g) for _, g in last) - n_pseudo, 1)
    n_pseudo = max(n_pseudo, 1)
    aux = head.assign_layer(all_cls[0, :, P:], all_boxes[0, :, P:], gts, METAS, query_classes, wildcard)
    e = expected_layer(all_cls[0, :, P:], all_boxes[0, :, P:], gts, aux, n_true, n_pseudo)
    assert float(losses['d0.loss_cls']) == pytest.approx(float(e[0]), rel=1e-6)
    assert float(losses['d0.loss_bbox']) == pytest.approx(float(e[1]), rel=1e-6)
    enc = head.assign_layer(cls, boxes, gts, METAS)
    e = expected_layer(cls, boxes, gts, enc, n_true, n_pseudo)
    assert float(losses['enc_loss_cls']) == pytest.approx(float(e[0]), rel=1e-6)
    assert float(losses['enc_loss_iou']) == pytest.approx(float(e[2]), rel=1e-6)
    # every query of class 3 (the wildcard) may take only the pseudo box; class-1 query q1 of image 0 the true box
    for q, g in zip(*last[0]):
        assert int(query_classes[0, q]) == (wildcard if bool(gts[0].pseudo[g]) else int(gts[0].labels[g]))


def test_head_layers_and_output_boxes():
    """One objectness Linear shared by the decoder layers, a separate copy for the encoder; output boxes are
    sigmoid(delta + inverse_sigmoid(ref, eps=1e-3)) (mmdet's head uses eps 1e-5)."""
    head = make_head()
    assert head.cls_branches[0] is head.cls_branches[1] and head.cls_branches[2] is not head.cls_branches[0]
    assert len({id(m) for m in head.reg_branches}) == 3
    torch.manual_seed(0)
    hs = torch.randn(2, 1, 3, 8)
    refs = [torch.tensor([[[1e-4, 0.5, 0.9999, 0.3]] * 3]), torch.rand(1, 3, 4)]
    cls, boxes = head(hs, refs)
    for li in range(2):
        r = refs[li].clamp(0, 1)
        inv = torch.log(r.clamp(min=1e-3) / (1 - r).clamp(min=1e-3))
        assert torch.allclose(boxes[li], (head.reg_branches[li](hs[li]) + inv).sigmoid(), atol=1e-6)
        assert torch.allclose(cls[li], head.cls_branches[0](hs[li]))
