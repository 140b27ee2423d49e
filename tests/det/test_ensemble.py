"""Test-time F-VLM ensemble (docs/fvit.md section 9, tests 6, 8, 9)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from declip_mm.models.roi_heads import FViTBBoxHead, FViTRoIHead, TextEmbeddingClassifier, pool_clip_embeddings

D = 8


def _head(num_classes=2, novel=(1, ), **kw):
    emb = F.normalize(torch.randn(num_classes + 1, D, generator=torch.Generator().manual_seed(0)), dim=-1)
    return FViTBBoxHead(text_embeddings=emb, in_channels=4, roi_feat_size=2, conv_out_channels=4,
                        fc_out_channels=D, num_classes=num_classes, novel_classes=list(novel), **kw)


def test_combine_worked_values():
    head = _head(alpha=0.1, beta=0.8)
    p_det = torch.tensor([[0.5, 0.2, 0.3]])   # (base, novel, bg)
    p_clip = torch.tensor([[0.1, 0.6, 0.3]])
    s = head.combine_probs(p_det, p_clip)
    assert s[0].tolist() == pytest.approx([0.4257, 0.4816, 0.3000], abs=1e-4)
    # no renormalisation
    assert s.sum().item() == pytest.approx(0.4257 + 0.4816 + 0.3, abs=1e-3)


def test_ensemble_scores_equals_formula():
    head = _head(alpha=0.1, beta=0.8, vlm_temperature=75.0)
    logits = torch.randn(5, 3)
    clip = torch.randn(5, D)
    t = head.text_classifier.text_embeddings
    p_det = logits.softmax(-1)
    p_clip = (75.0 * F.normalize(clip, dim=-1) @ t.t()).softmax(-1)
    a = torch.tensor([0.1, 0.8, 0.1])
    expect = p_det ** (1 - a) * p_clip ** a
    assert torch.allclose(head.ensemble_scores(logits, clip), expect, atol=1e-6)


def test_novel_from_zero_weight_columns():
    emb = F.normalize(torch.randn(4, D), dim=-1)
    head = FViTBBoxHead(text_embeddings=emb, in_channels=4, roi_feat_size=2, conv_out_channels=4, fc_out_channels=D,
                        num_classes=3, alpha=0.1, beta=0.8,
                        loss_cls=dict(type='ZeroWeightMaskedCrossEntropyLoss', class_weight=[1, 0, 1], bg_weight=0.6))
    assert head.ensemble_exponent.tolist() == pytest.approx([0.1, 0.8, 0.1, 0.1])


def test_classifier_identical_vectors_give_T_and_bg_last():
    emb = F.normalize(torch.randn(3, D), dim=-1)
    clf = TextEmbeddingClassifier(D, 3, text_embeddings=emb)
    out = clf(emb * 3.0)  # scale does not matter (cosine)
    assert torch.allclose(out.diagonal(), torch.full((3, ), 50.0), atol=1e-4)
    assert clf.num_classes == 2 and out.shape == (3, 3)
    assert isinstance(clf.logit_scale, torch.nn.Parameter) and clf.logit_scale.item() == 50.0


def test_one_by_one_pool_of_constant_box():
    vlm = torch.zeros(1, D, 8, 8)
    v = torch.arange(1., D + 1)
    vlm[0, :, 2:6, 2:6] = v[:, None, None]
    rois = torch.tensor([[0., 2 * 16, 2 * 16, 6 * 16, 6 * 16]])  # pixel coords, stride 16
    out = pool_clip_embeddings(vlm, rois, 1 / 16)
    assert torch.allclose(out[0], F.normalize(v, dim=0), atol=1e-5)


def test_roi_head_pools_on_proposals_not_regressed_boxes():
    torch.manual_seed(0)
    head_cfg = dict(type='FViTBBoxHead', in_channels=4, roi_feat_size=7, conv_out_channels=4, fc_out_channels=D,
                    num_classes=2, novel_classes=[1], norm_cfg=None,
                    text_embeddings=F.normalize(torch.randn(3, D), dim=-1))
    roi_head = FViTRoIHead(
        bbox_roi_extractor=dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7,
                                sampling_ratio=0), out_channels=4, featmap_strides=[4]),
        bbox_head=head_cfg, test_cfg=ConfigDict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.99),
                                                max_per_img=100))
    roi_head.eval()
    # make the box regression large so regressed boxes differ from proposals
    with torch.no_grad():
        roi_head.bbox_head.fc_reg.bias.copy_(torch.tensor([5.0, 5.0, 2.0, 2.0]))
    x = (torch.randn(1, 4, 16, 16), )
    proposals = torch.tensor([[8., 8., 40., 40.], [20., 4., 60., 30.]])
    seen = {}
    orig = roi_head.bbox_head.ensemble_scores

    def spy(logits, clip_emb):
        seen['clip'] = clip_emb.clone()
        return orig(logits, clip_emb)
    roi_head.bbox_head.ensemble_scores = spy
    vlm = F.normalize(torch.randn(1, D, 4, 4), dim=1)
    from mmdet.structures import DetDataSample
    ds = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1., 1.)))
    res = roi_head.predict(x, [InstanceData(bboxes=proposals)], [ds], rescale=False, vlm_feat=vlm, vlm_scale=1 / 16)
    from mmdet.structures.bbox import bbox2roi
    expect = pool_clip_embeddings(vlm, bbox2roi([proposals]), 1 / 16)
    assert torch.allclose(seen['clip'], expect, atol=1e-6)
    # and the output boxes are the regressed ones, i.e. not the proposals
    assert len(res[0].bboxes) > 0
    assert not any(torch.allclose(b, p, atol=1.0) for b in res[0].bboxes for p in proposals)
    # no softmax re-applied: output scores are the ensembled values of some (roi, class) pair
    logits = roi_head._bbox_forward(x, bbox2roi([proposals]))['cls_score']
    ens = orig(logits, expect)[:, :2].flatten()
    for s in res[0].scores:
        assert torch.isclose(ens, s, atol=1e-5).any()
