"""OV-DQUO's class-gated (wildcard) matching, per-batch vocabulary sampling and denoising text queries, each pinned
against a plain-torch computation written here (brute-force assignment, the sampling steps, the noise draws)."""
import itertools

import pytest
import torch
from mmengine.structures import InstanceData

import declip_mm  # noqa: F401


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def pair_giou(a, b):
    """(N, M) GIoU of xyxy boxes."""
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).prod(-1)[:, None] + (b[:, 2:] - b[:, :2]).prod(-1)[None] - inter
    enc = (torch.max(a[:, None, 2:], b[None, :, 2:]) - torch.min(a[:, None, :2], b[None, :, :2])).prod(-1)
    return inter / union - (enc - union) / enc, inter / union


H, W, C = 100, 200, 5  # image size, vocabulary size (wildcard index 5)
Q_BOXES = torch.tensor([[0.20, 0.30, 0.10, 0.20], [0.22, 0.31, 0.12, 0.18], [0.70, 0.70, 0.10, 0.10],
                        [0.50, 0.20, 0.20, 0.20], [0.80, 0.42, 0.10, 0.10], [0.10, 0.85, 0.08, 0.08],
                        [0.40, 0.70, 0.10, 0.10]])
# q4 sits exactly on gt1 but has class 1: without the class gate it would take gt1 (class 2)
Q_CLS = torch.tensor([1, 1, 2, 5, 1, 4, 4])
LOGITS = torch.tensor([[0.3], [-0.2], [1.0], [0.1], [2.0], [2.5], [-1.0]])
G_BOXES = torch.tensor([[0.21, 0.30, 0.11, 0.21],   # gt0 class 1
                        [0.80, 0.40, 0.10, 0.10],   # gt1 class 2: the only class-2 query (q2) is far -> dropped
                        [0.70, 0.71, 0.11, 0.10],   # gt2 class 3: no class-3 query at all -> dropped
                        [0.52, 0.21, 0.20, 0.19],   # gt3 pseudo (wildcard)
                        [0.10, 0.86, 0.08, 0.08]])  # gt4 class 4: q5 on it
G_LABELS = torch.tensor([1, 2, 3, C, 4])  # pseudo box -> wildcard index


def brute_force(cost, allowed):
    """Minimum-cost assignment of every gt to a distinct query (forbidden = 99), then pairs at 99 dropped."""
    c = cost.masked_fill(~allowed, 99.0)
    nq, ng = c.shape
    best, best_pairs = None, None
    for qs in itertools.permutations(range(nq), ng):
        total = sum(float(c[q, g]) for g, q in enumerate(qs))
        if best is None or total < best - 1e-12:
            best, best_pairs = total, [(q, g) for g, q in enumerate(qs)]
    return sorted((q, g) for q, g in best_pairs if c[q, g] < 99)


def reference_cost():
    p = LOGITS.sigmoid()
    focal = 0.25 * (1 - p) ** 2 * -(p + 1e-7).log() - 0.75 * p ** 2 * -(1 - p + 1e-7).log()
    giou, iou = pair_giou(cxcywh_to_xyxy(Q_BOXES), cxcywh_to_xyxy(G_BOXES))
    return 5 * torch.cdist(Q_BOXES, G_BOXES, p=1) + 2 * focal.expand(-1, len(G_BOXES)) - 2 * giou, giou, iou


def run_assigner(**kw):
    from mmdet.registry import TASK_UTILS
    assigner = TASK_UTILS.build(dict(type='WildcardHungarianAssigner', match_costs=[
        dict(type='FocalLossCost', weight=2.0, eps=1e-7), dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0)], **kw))
    f = torch.tensor([W, H, W, H], dtype=torch.float32)
    pred = InstanceData(scores=LOGITS, bboxes=cxcywh_to_xyxy(Q_BOXES) * f, query_classes=Q_CLS)
    gt = InstanceData(bboxes=cxcywh_to_xyxy(G_BOXES) * f, labels=G_LABELS)
    res = assigner.assign(pred, gt, img_meta=dict(img_shape=(H, W)))
    pos = (res.gt_inds > 0).nonzero().flatten()
    return sorted(zip(pos.tolist(), (res.gt_inds[pos] - 1).tolist())), assigner, pred, gt


def test_wildcard_assigner_matches_brute_force_with_gate():
    pairs, *_ = run_assigner()
    cost, giou, _ = reference_cost()
    allowed = Q_CLS[:, None] == G_LABELS[None]
    allowed &= (giou.masked_fill(~allowed, -1) > 0).any(0, keepdim=True)  # a gt needs an overlapping allowed query
    expected = brute_force(cost, allowed)
    assert pairs == expected == [(0, 0), (3, 3), (5, 4)]
    # the class gate decides: q4 lies on gt1 but is of another class; gt2's class is absent
    assert all(g not in (1, 2) for _, g in pairs)


def test_wildcard_assigner_pair_overlap_option():
    """q5 covers gt4; moving it off (IoU 0) leaves q6 (class 4, overlapping) as gt4's only partner when pairs must
    overlap, while OV-DQUO's gate only asks the column to have SOME overlapping allowed query."""
    global Q_BOXES
    saved = Q_BOXES.clone()
    try:
        Q_BOXES = Q_BOXES.clone()
        Q_BOXES[5] = torch.tensor([0.30, 0.90, 0.04, 0.04])  # class 4, IoU 0 with gt4, cheap objectness cost
        Q_BOXES[6] = torch.tensor([0.12, 0.84, 0.10, 0.10])  # class 4, overlaps gt4
        LOGITS[6, 0] = -4.0  # expensive objectness: the plain gate prefers the IoU-0 query q5
        pairs, *_ = run_assigner()
        cost, giou, iou = reference_cost()
        allowed = Q_CLS[:, None] == G_LABELS[None]
        allowed &= (giou.masked_fill(~allowed, -1) > 0).any(0, keepdim=True)
        assert pairs == brute_force(cost, allowed)
        strict, *_ = run_assigner(require_pair_overlap=True)
        assert strict == brute_force(cost, allowed & (iou > 0))
        assert dict((g, q) for q, g in pairs)[4] != dict((g, q) for q, g in strict)[4]
    finally:
        Q_BOXES = saved
        LOGITS[6, 0] = -1.0


def test_wildcard_assigner_no_targets():
    from mmdet.registry import TASK_UTILS
    assigner = TASK_UTILS.build(dict(type='WildcardHungarianAssigner', match_costs=[
        dict(type='FocalLossCost', weight=2.0)]))
    res = assigner.assign(InstanceData(scores=LOGITS, bboxes=torch.rand(7, 4), query_classes=Q_CLS),
                          InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)))
    assert (res.gt_inds == 0).all()


# ------------------------------------------------------------------ vocabulary sampling
def reference_sample(true_labels, num_classes, n, seed):
    """The original per-batch sampling: U sorted; |U| >= n: random n of U; else U then random others."""
    torch.manual_seed(seed)
    gt = torch.unique(true_labels)
    if gt.numel() >= n:
        return gt[torch.randperm(gt.numel())][:n]
    rest = torch.tensor([c for c in range(num_classes) if c not in set(gt.tolist())])
    return torch.cat([gt, rest[torch.randperm(rest.numel())][:n - gt.numel()]])


@pytest.mark.parametrize('labels', [[7, 3, 3, 11], list(range(0, 60, 2))])
def test_category_sampler_follows_the_original_steps(labels):
    from declip_mm.models.task_modules import OVCategorySampler
    s = OVCategorySampler(num_sampled=20, pool='all')
    torch.manual_seed(4)
    got = s.sample(torch.tensor(labels), 100)
    assert got.tolist() == reference_sample(torch.tensor(labels), 100, 20, 4).tolist()
    assert len(set(got.tolist())) == 20
    if len(set(labels)) < 20:
        assert got[:len(set(labels))].tolist() == sorted(set(labels))  # the batch's classes first, sorted


def test_category_sampler_base_pool_and_relabel():
    from declip_mm.models.task_modules import OVCategorySampler
    s = OVCategorySampler(num_sampled=None, pool='base')
    vocab = s.sample(torch.tensor([4, 0]), 6, novel_indices=[2, 4])
    assert vocab.tolist() == [0, 1, 3, 5] and s.vocabulary_size(6, [2, 4]) == 4
    gt = InstanceData(bboxes=torch.arange(20.).view(5, 4), labels=torch.tensor([3, 4, -1, 5, -1]),
                      pseudo=torch.tensor([False, False, True, False, True]),
                      pseudo_weights=torch.tensor([1.0, 1.0, 0.3, 1.0, 0.9]))
    out = OVCategorySampler.relabel(gt, vocab)
    # class 4 (novel, outside the vocabulary) is dropped together with its flag and weight
    assert out.labels.tolist() == [2, -1, 3, -1]
    assert out.pseudo.tolist() == [False, True, False, True]
    assert out.pseudo_weights.tolist() == pytest.approx([1.0, 0.3, 1.0, 0.9])
    assert out.bboxes[:, 0].tolist() == [0., 8., 12., 16.]
    with pytest.raises(ValueError, match='num_sampled=10'):
        OVCategorySampler(num_sampled=10, pool='base').vocabulary_size(6, [2, 4])


# ------------------------------------------------------------------ denoising text queries
def test_text_cdn_content_follows_the_noisy_labels():
    """One image, n targets, G groups: content of slot i of block k = label_table[noisy] + text[wildcard] for
    positive blocks (k even) / + text[noisy] for negative blocks; -1 means the wildcard row after the noise."""
    from declip_mm.models.layers import TextCdnQueryGenerator
    V = 4  # 3 classes + wildcard
    gen = TextCdnQueryGenerator(num_classes=V, embed_dims=6, num_matching_queries=5, label_noise_scale=1.0,
                                box_noise_scale=1.0, group_cfg=dict(dynamic=True, num_dn_queries=6))
    labels = torch.tensor([-1, 2, -1])
    boxes = torch.tensor([[10., 10., 50., 40.], [60., 20., 90., 70.], [5., 60., 30., 95.]])
    text = torch.randn(V, 6)
    torch.manual_seed(9)
    q, b, mask, meta = gen([(boxes, labels)], [(100, 100)], text)
    n, G = 3, meta['num_denoising_groups']
    assert G == 6 // 3 and q.shape == (1, 2 * n * G, 6)
    torch.manual_seed(9)
    expand = labels.repeat(2 * G)
    p = torch.rand_like(expand.float())
    chosen = torch.nonzero(p < 0.5).view(-1)
    noisy = expand.scatter(0, chosen, torch.randint_like(chosen, 0, V))
    noisy[noisy == -1] = V - 1
    table = gen.label_embedding.weight.detach()
    for k in range(2 * G):
        for i in range(n):
            lab = noisy[k * n + i]
            want = table[lab] + (text[V - 1] if k % 2 == 0 else text[lab])
            assert torch.allclose(q[0, k * n + i].detach(), want, atol=1e-6), (k, i)
    assert chosen.numel() > 0 and (noisy[chosen] != expand[chosen]).any()  # the noise did something here
    # matching queries cannot see denoising ones; groups cannot see each other
    assert mask[2 * n * G:, :2 * n * G].all() and mask[:2 * n, 2 * n:2 * n * G].all()
    assert not mask[:2 * n, :2 * n].any()
