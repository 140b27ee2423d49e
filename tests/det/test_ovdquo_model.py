"""The OVDQUO detector's own steps on the tiny config: CLIP region embeddings (vs torchvision's RoIAlign), the
text-query assignment (temperature, background logit, test-only novel boost, wildcard override, sort), test scores
(CLIP x objectness, inverse-sigmoid round trip, per-class NMS vs torchvision), the pyramid neck, bad input."""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from .conftest import REPO

CFG = osp.join(REPO, 'configs/ovdquo/ovdquo_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py')


@pytest.fixture(scope='module')
def model():
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import declip_mm  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(CFG)
    cfg.model.text_embeddings = None
    with pytest.warns(UserWarning, match='random unit vectors'):
        m = MODELS.build(cfg.model)
    m.init_weights()
    return m


def samples(shapes, batch=(128, 128), gts=None):
    out = []
    for i, (h, w) in enumerate(shapes):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), batch_input_shape=batch, ori_shape=(h, w),
                                        scale_factor=(1.0, 1.0)))
        s.gt_instances = gts[i] if gts else InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long())
        out.append(s)
    return out


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


# ------------------------------------------------------------------ region embeddings
def test_valid_cells_follow_the_nearest_resized_mask():
    from declip_mm.models.layers import valid_cells
    # 683 of 1024 pixels at 64 cells: nearest resize keeps cell i iff floor(i * 16) < 683 -> 43 cells, not 42.7
    v = valid_cells((64, 64), [(683, 1024), (1024, 512)], (1024, 1024))
    assert v.tolist() == [[64, 43], [32, 64]]


def test_region_embedder_matches_torchvision_roi_align():
    from torchvision.ops import roi_align
    from declip_mm.models.layers import ViTRegionEmbedder
    torch.manual_seed(0)
    dense = F.normalize(torch.randn(2, 8, 8, 8), dim=1)
    boxes = torch.rand(2, 5, 4) * torch.tensor([0.6, 0.6, 0.5, 0.5]) + torch.tensor([0.2, 0.2, 0.05, 0.05])
    shapes = [(128, 128), (96, 112)]  # image 1: 6 x 7 valid cells
    emb = ViTRegionEmbedder()(dict(dense=dense), boxes, shapes, (128, 128))
    ref = []
    for b, cells in enumerate([(8, 8), (7, 6)]):
        xyxy = cxcywh_to_xyxy(boxes[b]) * torch.tensor([cells[0], cells[1], cells[0], cells[1]], dtype=torch.float)
        r = roi_align(dense[b:b + 1], [xyxy], output_size=(1, 1), spatial_scale=1.0, sampling_ratio=-1,
                      aligned=True)[..., 0, 0]
        ref.append(F.normalize(r, dim=-1))
    assert torch.allclose(emb, torch.stack(ref), atol=1e-6)


# ------------------------------------------------------------------ text-query assignment
class FixedEmbedder(torch.nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb = emb

    def proposal_embeddings(self, clip_feats, boxes, img_shapes, batch_input_shape):
        return self.emb

    box_embeddings = proposal_embeddings


def expected_classes(emb, text, novel, boost, wildcard_mask=None, wildcard=None):
    cos = emb @ text.t()
    p = torch.cat([cos, torch.full_like(cos[..., :1], -1.0)], -1).mul(100).softmax(-1)[..., :-1].clone()
    if boost != 1.0:
        p[..., novel] = p[..., novel] * boost
    cls = p.argmax(-1)
    if wildcard_mask is not None:
        cls[wildcard_mask] = wildcard
    return cls


def test_query_assignment_train_vs_test(model):
    K = len(model.class_names)
    novel = model.novel_indices
    assert [model.class_names[i] for i in novel] == ['triangle', 'ring'] and model.novel_boost == 3.0
    torch.manual_seed(2)
    text = F.normalize(torch.randn(K, 32), dim=-1)
    # each proposal close to two classes: a novel one and a base one 0.005 further away in cosine... or closer
    emb = []
    for j in range(12):
        nov, base = novel[j % 2], [0, 1, 3, 5][j % 4]
        e = F.normalize(text[nov] + text[base] + 0.1 * torch.randn(32), dim=0)
        emb.append(e)
    emb = torch.stack(emb)[None]
    proposals = torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(1, 12, 1)
    saved = model.region_embedder
    model.region_embedder = FixedEmbedder(emb)
    try:
        model.eval()
        cls, order, _ = model.assign_text_queries(proposals, {}, dict(text=text, wildcard_index=None),
                                                  samples([(128, 128)]))
        want = expected_classes(emb, text, novel, 3.0)[0]
        assert cls[0].tolist() == sorted(want.tolist())
        assert torch.equal(want[order[0]], cls[0])
        no_boost = expected_classes(emb, text, novel, 1.0)[0]
        assert not torch.equal(want, no_boost)  # the boost matters here...
        model.train()  # ...and is not applied in training (base vocabulary here: all K for the check)
        cls_t, order_t, _ = model.assign_text_queries(proposals, {}, dict(text=torch.cat([text, text[:1]]),
                                                                          wildcard_index=K),
                                                      samples([(128, 128)], gts=[InstanceData(
                                                          bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long(),
                                                          pseudo=torch.zeros(0, dtype=torch.bool))]))
        assert cls_t[0].tolist() == sorted(no_boost.tolist())
    finally:
        model.region_embedder = saved
        model.train()


def test_wildcard_override_above_iou_half(model):
    """A proposal exactly on a pseudo box takes the wildcard; one at IoU 0.49 keeps its CLIP class."""
    K = len(model.class_names)
    text = F.normalize(torch.randn(K, 32), dim=-1)
    emb = text[[0, 0, 1]][None]
    props = torch.tensor([[[0.5, 0.5, 0.4, 0.4], [0.2, 0.2, 0.2, 0.2], [0.8, 0.3, 0.2, 0.2]]])
    # pseudo boxes (pixels, 128 x 128): exactly proposal 0; a box inside proposal 1 with IoU 0.49
    p0 = cxcywh_to_xyxy(props[0, 0]) * 128
    c1, half = props[0, 1, :2] * 128, props[0, 1, 2:] * 128 / 2 * 0.7
    p1 = torch.cat([c1 - half, c1 + half])  # IoU = 0.7^2 = 0.49
    gt = InstanceData(bboxes=torch.stack([p0, p1, torch.tensor([0., 0., 10., 10.])]),
                      labels=torch.tensor([-1, -1, 2]), pseudo=torch.tensor([True, True, False]))
    saved = model.region_embedder
    model.region_embedder = FixedEmbedder(emb)
    try:
        model.train()
        text_v = torch.cat([text, text[:1]])
        cls, order, _ = model.assign_text_queries(props, {}, dict(text=text_v, wildcard_index=K),
                                                  samples([(128, 128)], gts=[gt]))
        by_proposal = torch.empty_like(cls[0])
        by_proposal[order[0]] = cls[0]
        assert by_proposal.tolist() == [K, 0, 1]
    finally:
        model.region_embedder = saved


# ------------------------------------------------------------------ scores and post-processing
def test_class_scores_are_clip_softmax_times_objectness(model):
    K = len(model.class_names)
    torch.manual_seed(5)
    emb = F.normalize(torch.randn(1, 4, 32), dim=-1)
    obj = torch.randn(1, 4, 1)
    saved = model.region_embedder
    model.region_embedder = FixedEmbedder(emb)
    try:
        s = model.class_scores({}, torch.zeros(1, 4, 4), obj, samples([(128, 128)]))
    finally:
        model.region_embedder = saved
    cos = emb @ model.text_embeddings.t()
    p = torch.cat([cos, torch.zeros_like(cos[..., :1])], -1).mul(100).softmax(-1)[..., :K]
    assert torch.allclose(s, p * obj.sigmoid(), atol=1e-6)


def test_predict_by_feat_roundtrip_and_per_class_nms(model):
    from torchvision.ops import batched_nms
    head = model.bbox_head
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2], [0.3, 0.31, 0.2, 0.2]])
    scores = torch.zeros(4, 3)
    scores[0] = torch.tensor([0.9999, 0.2, 0.0005])
    scores[1] = torch.tensor([0.8, 0.6, 0.0])
    scores[2] = torch.tensor([0.001, 0.3, 0.5])
    scores[3] = torch.tensor([0.1, 0.7, 0.0011])
    meta = dict(img_shape=(100, 200), scale_factor=(2.0, 0.5))
    res = head.predict_by_feat(scores[None], boxes[None], [meta], rescale=True)[0]
    # reference: round trip clamps to [1e-3, 1 - 1e-3] in logit space; strict > 0.001; NMS per class at 0.5
    rt = torch.log(scores.clamp(1e-3, 1) / (1 - scores).clamp(1e-3, 1)).sigmoid()
    px = cxcywh_to_xyxy(boxes) * torch.tensor([200., 100., 200., 100.]) / torch.tensor([2.0, 0.5, 2.0, 0.5])
    qi, ci = (rt > 0.001).nonzero(as_tuple=True)
    keep = batched_nms(px[qi], rt[qi, ci], ci, 0.5)
    assert res.scores.tolist() == pytest.approx(rt[qi, ci][keep].tolist(), abs=1e-7)
    assert res.labels.tolist() == ci[keep].tolist()
    assert torch.allclose(res.bboxes, px[qi][keep])
    assert float(res.scores.max()) == pytest.approx(0.999, abs=1e-6)  # 0.9999 saturates
    assert 0.001 not in [round(v, 6) for v in res.scores.tolist()]  # exactly 0.001 is not > 0.001
    head.test_cfg['score_roundtrip'] = False
    try:
        raw = head.predict_by_feat(scores[None], boxes[None], [meta], rescale=True)[0]
        assert float(raw.scores.max()) == pytest.approx(0.9999, abs=1e-6)
    finally:
        head.test_cfg['score_roundtrip'] = True


def test_vit_pyramid_neck():
    from declip_mm.models.necks import ViTPyramidNeck
    torch.manual_seed(0)
    neck = ViTPyramidNeck(4, (2, 1, 0.5))
    x = [torch.randn(1, 4, 6, 6) for _ in range(3)]
    y = neck(x)
    assert torch.allclose(y[0], F.conv_transpose2d(x[0], neck.branches[0].weight, neck.branches[0].bias, stride=2))
    assert torch.equal(y[1], x[1]) and torch.equal(y[2], F.max_pool2d(x[2], 2))
    with pytest.raises(ValueError, match='rescale 4'):
        ViTPyramidNeck(4, (4, 2, 1, 0.5))


# ------------------------------------------------------------------ bad input / edge cases
def test_vocabulary_without_wildcard_is_an_error(tmp_path, model):
    from mmengine.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(CFG)
    names = list(cfg.classes) + ['background']
    path = str(tmp_path / 'no_object.pt')
    torch.save({n: torch.randn(32) for n in names}, path)
    cfg.model.text_embeddings = path
    with pytest.raises(ValueError, match=r"no_object\.pt: no text embedding for the wildcard 'object'"):
        MODELS.build(copy.deepcopy(cfg.model))
    cfg.model.wildcard = None
    with pytest.raises(ValueError, match='needs a wildcard'):
        MODELS.build(copy.deepcopy(cfg.model))
    # the text-embedding tool adds the wildcard row with --extra-classes
    from .conftest import load_tool
    path = str(tmp_path / 'with_object.pt')
    load_tool('tools/gen_text_embeddings.py').main(['--classes', ','.join(cfg.classes), '--extra-classes', 'object',
                                                    '--out', path, '--tiny', 'eva', '--device', 'cpu',
                                                    '--no-progress'])
    cfg.model.text_embeddings = path
    cfg.model.wildcard = 'object'
    m = MODELS.build(copy.deepcopy(cfg.model))
    emb = torch.load(path, weights_only=True)
    assert torch.allclose(m.wildcard_embedding, F.normalize(emb['object'], dim=0), atol=1e-6)
    assert torch.allclose(m.text_embeddings[2], F.normalize(emb['triangle'], dim=0), atol=1e-6)


def test_training_step_with_empty_images_and_pseudo_boxes(model):
    """A batch whose images have no box at all trains (no denoising queries, zero DN loss, all losses finite);
    pseudo boxes with true ones train too, and every parameter that should learn gets a gradient."""
    model.train()
    torch.manual_seed(0)
    imgs = torch.randn(2, 3, 128, 128)
    empty = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long()) for _ in range(2)]
    losses = model.loss(imgs, samples([(128, 128), (96, 112)], gts=empty))
    assert float(losses['dn_loss_cls'].detach()) == 0.0 and float(losses['loss_bbox'].detach()) == 0.0
    assert all(torch.isfinite(v).all() for v in losses.values())
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    model.zero_grad()
    gts = [InstanceData(bboxes=torch.tensor([[10., 10., 60., 50.], [70., 20., 120., 90.]]),
                        labels=torch.tensor([0, -1]), pseudo=torch.tensor([False, True]),
                        pseudo_weights=torch.tensor([1.0, 0.5])),
           InstanceData(bboxes=torch.tensor([[5., 5., 40., 40.]]), labels=torch.tensor([3]))]
    losses = model.loss(imgs, samples([(128, 128), (96, 112)], gts=gts))
    assert float(losses['dn_loss_cls'].detach()) > 0
    true_only = [InstanceData(bboxes=torch.tensor([[10., 10., 60., 50.]]), labels=torch.tensor([0]))] * 2
    assert float(model.loss(imgs, samples([(128, 128), (128, 128)], gts=true_only))['dn_loss_cls']) > 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]
    assert all(p.grad is None for p in model.backbone.parameters())
    # inconsistent pseudo flags are refused
    bad = [InstanceData(bboxes=torch.zeros(1, 4), labels=torch.tensor([2]), pseudo=torch.tensor([True]))] * 2
    with pytest.raises(ValueError, match='pseudo flags that disagree'):
        model.loss(imgs, samples([(128, 128), (128, 128)], gts=bad))


def test_denoising_targets_are_pseudo_boxes_else_the_first_box():
    from declip_mm.models.detectors import OVDQUO
    a = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0).long(), pseudo=torch.zeros(0, dtype=torch.bool),
                     pseudo_weights=torch.zeros(0))
    b = InstanceData(bboxes=torch.tensor([[1., 1, 5, 5], [2, 2, 8, 8]]), labels=torch.tensor([3, 1]),
                     pseudo=torch.tensor([False, False]), pseudo_weights=torch.ones(2))
    t = OVDQUO.dn_targets(samples([(10, 10), (10, 10)], gts=[a, b]))
    assert [len(x[0]) for x in t] == [0, 1] and t[1][1].tolist() == [3] and t[1][0].tolist() == [[1, 1, 5, 5]]
    c = InstanceData(bboxes=torch.tensor([[1., 1, 5, 5], [2, 2, 8, 8]]), labels=torch.tensor([3, -1]),
                     pseudo=torch.tensor([False, True]), pseudo_weights=torch.tensor([1.0, 0.4]))
    t = OVDQUO.dn_targets(samples([(10, 10), (10, 10)], gts=[b, c]))
    assert [len(x[0]) for x in t] == [0, 1] and t[1][2].tolist() == pytest.approx([0.4])


def test_too_few_tokens_for_the_queries_is_an_error(model):
    model.eval()
    with pytest.raises(ValueError, match='fewer than num_queries'):
        model.predict(torch.randn(1, 3, 32, 32), samples([(32, 32)], batch=(32, 32)))
