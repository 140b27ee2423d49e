"""CorrCLIP v1 in the training-free segmentor, pinned against plain-torch computations written here from the original
code (zdk258/CorrCLIP @ 103bc18, ``CorrCLIPv1/``; "CC file:line" below), never against the code under test.

Which test catches which one-line bug:

* ``test_dbscan_min1``: ``<`` instead of ``<=`` for the radius, clusters numbered in another order, noise (a point
  without neighbours) put in a cluster.
* ``test_merge_regions``: the unsegmented (smallest) id clustered with the others, the offset 10000 changed, the
  region mean taken before normalising the wrong way, noise relabelled.
* ``test_scope_attention_formula_and_defaults``: tau default (4) changed, the mean rule's direction flipped
  (``S < mean``), the unsegmented id taken as the largest instead of the smallest, the "either token unsegmented"
  rule replaced by "both", softmax over queries.
* ``test_num_spatial_defaults``: NUM_SPATIAL table or the block range (5..9 for 12 blocks) off by one.
* ``test_extract_corr_matches_original_forward``: CLS kept in V (``v[:, :-1]`` / no drop), the spatial mean over the
  wrong blocks or without CLS, an MCT seeing itself / other MCTs / all patches, the semantic masks resized
  bilinearly, alpha / beta defaults (1.0 / 0.5) swapped, one ``ln_post`` for the sum instead of per branch, a
  residual / FFN added to the main branch.
* ``test_mct_with_one_full_region_is_the_cls_path_eva``: the EVA MCT path (RoPE on the MCT query, no RoPE on the
  keys, a missing layer scale, the wrong attention scale).
* ``test_crop_logits_with_masks``: masks padded with 0 instead of 10000, padding on the wrong side, logits at the
  CLIP grid, q instead of q + k from DINO.
* ``test_slide_merge_and_vote_against_original_loop``: window merge order (probabilities averaged, per-window
  resize to ``ori_shape``, no overlap count), the vote by the first label instead of the most frequent, the vote
  applied to the unsegmented id, masks resized bilinearly, ``prob_thd`` direction.
* ``test_batch_of_two_equals_one_at_a_time``: per-batch state (masks of image 0 used for image 1, as the original's
  ``masks[0]``); ``test_bf16_autocast``: the fp32 guard of the attention removed.
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from declip_mm.models.segmentors.corr_attention import (corrclip_num_spatial, dbscan_min1, merge_regions,
                                                        region_masks, scope_attention)
from declip_mm.models.task_modules import MaskFileError, save_mask_file

from .conftest import (IMNET_MEAN, IMNET_STD, REPO, build_peaky_vfm_model, build_seg_model, ref_pos_embed,
                       tiny_model_cfg, tiny_openai)

TINY_CC_CFG = osp.join(REPO, 'configs', 'zeroshot_seg',
                       'corrclip_tiny-eva02_tiny-dino-b8_color-masks_ov-scenes-synthetic.py')


def _model(family='openai', mask_dir=None, **overrides):
    cfg = tiny_model_cfg(TINY_CC_CFG)
    if family == 'openai':
        tiny_openai(cfg)
    if mask_dir is not None:
        cfg['proxy']['mask_source'] = dict(type='MaskFileSource', mask_dir=str(mask_dir))
    for k, v in overrides.items():
        if k == 'proxy':
            cfg['proxy'].update(v)
        else:
            cfg[k] = v
    return build_peaky_vfm_model(cfg, with_cls=True)


@pytest.fixture(scope='module')
def cc():
    return _model('openai')


def _blob_ids(h, w, seed, n=6, unseg_cols=None):
    """(h, w) int64 id map: overlapping rectangles painted in order, 0 = unsegmented."""
    rs = np.random.RandomState(seed)
    ids = np.zeros((h, w), dtype=np.int64)
    for k in range(1, n + 1):
        y, x = rs.randint(0, h - 4), rs.randint(0, w - 4)
        ids[y:y + rs.randint(4, h // 2 + 5), x:x + rs.randint(4, w // 2 + 5)] = k
    if unseg_cols:
        ids[:, :unseg_cols] = 0
    return torch.from_numpy(ids)


# ------------------------------------------------------------------------------------------ references (CC code)
def ref_dbscan(dist, eps):
    """scikit-learn's DBSCAN(metric='precomputed', min_samples=1) written out (CC transformer.py:556-557)."""
    n = len(dist)
    neigh = [[j for j in range(n) if dist[i][j] <= eps] for i in range(n)]
    core = [len(nb) >= 1 for nb in neigh]
    labels, lab = [-1] * n, 0
    for i in range(n):
        if labels[i] != -1 or not core[i]:
            continue
        labels[i], stack = lab, [i]
        while stack:
            p = stack.pop()
            for q in neigh[p]:
                if labels[q] == -1:
                    labels[q] = lab
                    if core[q]:
                        stack.append(q)
        lab += 1
    return labels


def ref_merge(dino_feats, feat_shape, masks, eps=0.2):
    """CC transformer.py:545-562 for one crop: dino_feats (M, C) normalised, masks (I, J) int -> merged (I, J)."""
    masks = masks.clone()
    vals = torch.unique(masks)
    if vals.shape[0] > 2:
        regs = [v == masks for v in vals]
        df = dino_feats.reshape(*feat_shape, -1)
        inst = F.normalize(torch.stack([df[r].mean(dim=0) for r in regs]), dim=1)[1:]
        isim = inst @ inst.T
        cl = ref_dbscan((isim.max() - isim).tolist(), eps)
        for idx, c in enumerate(cl, start=1):
            if c != -1:
                masks[regs[idx]] = c + 10000
    return masks


def ref_scope(sim, masks, tau=4.0):
    """CC transformer.py:565-578 for one crop: sim (M, M), masks (I, J) merged -> A (M, M)."""
    sim = sim.clone()
    regs = [(v == masks).view(-1) for v in torch.unique(masks)]
    eq = torch.zeros_like(sim).bool()
    for r in regs[1:]:
        eq += torch.outer(r, r)
    r0 = regs[0]
    eq += (r0.unsqueeze(0) + r0.unsqueeze(1)) * (sim > sim.mean())
    sim[~eq] = float('-inf')
    return (sim * tau).softmax(dim=-1)


def _masked_block(blk, t, am):
    """CC's ResidualAttentionBlock.forward (transformer.py:219-247) with a bool attn_mask (True = blocked)."""
    y = blk.ln_1(t)
    if not blk.attn.batch_first:
        a = blk.attn(y.transpose(0, 1), y.transpose(0, 1), y.transpose(0, 1), need_weights=False,
                     attn_mask=am)[0].transpose(0, 1)
    else:
        a = blk.attn(y, y, y, need_weights=False, attn_mask=am)[0]
    t = t + blk.ls_1(a)
    return t + blk.ls_2(blk.mlp(blk.ln_2(t)))


def ref_corr_forward(visual, img, dino_feats, feat_shape, masks, num_spatial, tau=4.0, alpha=1.0, beta=0.5):
    """CC transformer.py:506-634 for one image: img (3, H, W), dino_feats (M, C) normalised, masks (H, W) crop ids
    -> (M, D) features and the intermediate tensors."""
    p = visual.conv1.kernel_size[0]
    h, w = img.shape[-2] // p, img.shape[-1] // p
    x = visual.conv1(img[None]).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.reshape(1, 1, -1), x], dim=1)
    x = visual.ln_pre(x + ref_pos_embed(visual.positional_embedding, h, w)[None])
    sim = dino_feats @ dino_feats.T  # :542
    m = F.interpolate(masks[None, None].float(), size=feat_shape, mode='nearest').int()[0, 0]  # :545
    m = ref_merge(dino_feats, feat_shape, m)
    A = ref_scope(sim, m, tau)
    tok = F.interpolate(m[None, None].float(), size=(h, w), mode='nearest').int()[0, 0]  # :582
    rm = torch.stack([v == tok for v in torch.unique(tok)])  # :584
    R = rm.shape[0]
    seq = torch.cat([x[:, :1].repeat(1, R, 1), x], dim=1)  # :585-587 (batch first here)
    n = seq.shape[1]
    am = torch.zeros((n, n)).bool()  # :588-593
    am[R:, R:] = True
    am[:R, R] = True
    am[:R, R + 1:] = rm.view(R, -1)
    am = ~am
    blocks = visual.transformer.resblocks
    nl = len(blocks)
    sp = []
    for i, blk in enumerate(blocks[:-1]):  # :597-600
        seq = _masked_block(blk, seq, am)
        if nl - 2 - num_spatial <= i <= nl - 3:
            sp.append(seq[:, R:])
    last = blocks[-1]
    xs = torch.cat([seq[:, R:], torch.stack(sp).mean(0)], dim=0)  # :604
    C = xs.shape[-1]
    v = F.linear(last.ln_1(xs), last.attn.in_proj_weight[2 * C:], last.attn.in_proj_bias[2 * C:])  # :607-609
    v = v[:, 1:].transpose(1, 2).reshape(2, C, h, w)  # :610-611
    v = F.interpolate(v, size=feat_shape, mode='bilinear', align_corners=False).flatten(2).transpose(1, 2)
    ms = last.attn.out_proj(A[None] @ v)  # :614-616
    mct = _masked_block(last, seq, am)[0, :R]  # :619
    em = F.interpolate(rm[:, None].float(), size=feat_shape, mode='nearest').flatten(1)  # :620
    sem = em.T @ mct
    out = visual.ln_post(ms[0]) + alpha * visual.ln_post(ms[1]) + beta * visual.ln_post(sem)  # :626-630
    return out @ visual.proj, dict(A=A, merged=m, regions=rm, mct=mct)


def ref_dino_qk(vfm, vin):
    """CC corrclip_segmentor.py:102-112: q + k of the last block's qkv output, CLS dropped, L2-normalised."""
    out = {}
    hook = vfm.model.blocks[-1].attn.qkv.register_forward_hook(lambda m, i, o: out.__setitem__('qkv', o))
    with torch.no_grad():
        vfm(vin)
    hook.remove()
    qkv = out['qkv']
    B, T, _ = qkv.shape
    qkv = qkv.reshape(B, T, 3, -1).permute(2, 0, 1, 3)
    return F.normalize((qkv[0] + qkv[1])[:, 1:], dim=-1)


# ------------------------------------------------------------------------------------------ pieces
def test_dbscan_min1():
    g = torch.Generator().manual_seed(0)
    for t in range(60):
        n = int(torch.randint(1, 10, (1,), generator=g))
        f = F.normalize(torch.randn(n, 4, generator=g) + 2 * torch.randn(1, 4, generator=g), dim=1)
        if t % 5 == 0:
            f[0] = 0  # a zero mean feature: its own distance exceeds eps -> noise
        s = f @ f.T
        d = s.max() - s
        eps = float(torch.rand(1, generator=g)) * 0.6
        assert dbscan_min1(d, eps).tolist() == ref_dbscan(d.tolist(), eps), t
    # exactly on the radius is a neighbour (scikit-learn's <=)
    d = torch.tensor([[0.0, 0.2], [0.2, 0.0]])
    assert dbscan_min1(d, 0.2).tolist() == [0, 0]
    try:  # scikit-learn itself when it happens to be installed (not a dependency)
        from sklearn.cluster import DBSCAN
    except ImportError:
        return
    for t in range(20):
        f = F.normalize(torch.randn(8, 3, generator=g) + torch.randn(1, 3, generator=g), dim=1)
        s = f @ f.T
        d = s.max() - s
        assert dbscan_min1(d, 0.2).tolist() == DBSCAN(metric='precomputed', eps=0.2, min_samples=1).fit_predict(
            d.numpy()).tolist()


def test_merge_regions():
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(3, 16, generator=g)
    ids = _blob_ids(12, 14, seed=2, n=7, unseg_cols=3).int()
    # features: each id draws from one of 3 centres, so some regions merge and some do not
    which = {int(v): int(v) % 3 for v in torch.unique(ids)}
    f = torch.stack([centers[which[int(v)]] for v in ids.view(-1)]) + 0.3 * torch.randn(ids.numel(), 16, generator=g)
    f = F.normalize(f, dim=1)
    got = merge_regions(f.T.reshape(16, 12, 14), ids)
    want = ref_merge(f, (12, 14), ids)
    assert torch.equal(got, want)
    assert (got >= 10000).any() and len(torch.unique(got)) < len(torch.unique(ids))  # something merged
    assert torch.equal(got[ids == 0], ids[ids == 0])  # the unsegmented id stays
    two = torch.zeros(12, 14, dtype=torch.int32)
    two[:, 7:] = 5
    assert torch.equal(merge_regions(f.T.reshape(16, 12, 14), two), two)  # <= 2 ids: unchanged


def test_scope_attention_formula_and_defaults():
    g = torch.Generator().manual_seed(3)
    ids = _blob_ids(6, 7, seed=4, n=4, unseg_cols=2).int() + 3  # smallest id 3, not 0
    f = F.normalize(torch.randn(42, 8, generator=g) + torch.randn(1, 8, generator=g), dim=1)
    got = scope_attention(f.T.reshape(1, 8, 6, 7), ids[None])
    want = ref_scope(f @ f.T, ids)  # tau = 4 (CC transformer.py:538)
    torch.testing.assert_close(got[0], want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got[0], ref_scope(f @ f.T, ids, tau=1.0), atol=1e-3)


def test_num_spatial_defaults(cc):
    assert [corrclip_num_spatial(n) for n in (12, 24, 32, 6)] == [5, 12, 28, 2]  # CC transformer.py:529-537
    from declip_mm.models.segmentors.corr_attention import CorrCLIPAttention
    a = CorrCLIPAttention(vfm=cc.proxy.vfm)
    assert a.spatial_blocks(12) == (5, 6, 7, 8, 9)
    assert (a.tau, a.eps, a.alpha, a.beta, a.tap) == (4.0, 0.2, 1.0, 0.5, 'qk')


def test_region_masks_pads_rows():
    ids = torch.tensor([[[0, 0], [1, 2]], [[5, 5], [5, 5]]])
    r = region_masks(ids)
    assert r.shape == (2, 3, 2, 2)
    assert r[1, 1:].sum() == 0 and r[1, 0].all()
    assert torch.equal(r[0, 2], torch.tensor([[False, False], [False, True]]))


# ------------------------------------------------------------------------------------------ forward
def _crop_case(cc, seed, size=(48, 64)):
    g = torch.Generator().manual_seed(seed)
    crop = torch.randn(3, *size, generator=g)
    feats = F.normalize(torch.randn(1, 24, size[0] // 8, size[1] // 8, generator=g), dim=1)
    ids = _blob_ids(*size, seed=seed, n=5, unseg_cols=6).int()
    return crop, feats, ids


def test_extract_corr_matches_original_forward(cc):
    """Non-square crop, OpenAI tiny CLIP (4 blocks), dino features given: the whole CC CLIP forward."""
    for seed in (0, 1):
        crop, feats, ids = _crop_case(cc, seed)
        grid = tuple(feats.shape[-2:])
        m = merge_regions(feats[0], F.interpolate(ids[None, None].float(), size=grid, mode='nearest').int()[0, 0])
        A = scope_attention(feats, m[None])
        hw = (crop.shape[-2] // 16, crop.shape[-1] // 16)
        regions = region_masks(F.interpolate(m[None, None].float(), size=hw, mode='nearest').int()[:, 0])
        with torch.no_grad():
            got = cc.backbone.extract_corr(crop[None], A, grid, regions, cc.proxy.spatial_blocks(4),
                                           cc.proxy.alpha, cc.proxy.beta)
            want, parts = ref_corr_forward(cc.backbone.visual, crop, feats[0].flatten(1).T, grid, ids,
                                           num_spatial=1)
        assert parts['regions'].shape[0] >= 3
        torch.testing.assert_close(got[0].flatten(1).T, want, rtol=1e-4, atol=1e-4)


def test_mct_with_one_full_region_is_the_cls_path_eva():
    """One region covering every patch: each MCT sees exactly what CLS sees at every block, so the semantic
    branch's token is the normal forward's CLS output of the last block (timm's own EVA blocks with RoPE)."""
    m = _model('eva')
    bb = m.backbone
    img = torch.randn(1, 3, 48, 64)
    regions = torch.ones(1, 2, 3, 4, dtype=torch.bool)
    regions[0, 1] = False  # a padding row
    rec = {}
    orig = bb._tower.attend_block

    def spy(i, mm, x, allowed, aux):
        out = orig(i, mm, x, allowed, aux)
        rec[i] = out
        return out
    bb._tower.attend_block = spy
    try:
        with torch.no_grad():
            bb.extract_corr(img, torch.eye(12)[None], (3, 4), regions, (1, ), 1.0, 0.5)
    finally:
        del bb._tower.attend_block
    with torch.no_grad():
        x, hw, aux, _ = bb.last_block_input(img)
        cls_last = bb._tower.run_block(bb.num_blocks - 1, x, aux)[:, 0]
    torch.testing.assert_close(rec[bb.num_blocks - 1][:, 0], cls_last, rtol=1e-4, atol=1e-5)


def test_crop_logits_with_masks(cc, tmp_path):
    """A 40 x 52 crop padded to 48 x 64: masks padded with 10000, DINO q + k, classification at the DINO grid."""
    g = torch.Generator().manual_seed(5)
    crop = torch.randn(1, 3, 40, 52, generator=g)
    ids = _blob_ids(40, 52, seed=6, n=5, unseg_cols=5).int()
    text = F.normalize(torch.randn(5, 32, generator=g), dim=-1)
    mean, std = cc.pixel_stats()
    with torch.no_grad():
        got = cc.crop_logits(crop, text, ids[None])[0]
    # reference: CC corrclip_segmentor.py:154-166 (pad 56 there, 16 here) and :96-119
    l, r, t, b = 6, 6, 4, 4
    x = F.pad(crop, (l, r, t, b))[0]
    pm = F.pad(ids[None, None], (l, r, t, b), value=10000)[0, 0]
    raw = x * std.view(3, 1, 1) + mean.view(3, 1, 1)
    vin = ((raw - IMNET_MEAN.view(3, 1, 1)) / IMNET_STD.view(3, 1, 1))[None]
    dino = ref_dino_qk(cc.proxy.vfm, vin)[0]  # (M, C)
    grid = (6, 8)
    with torch.no_grad():
        feats, _ = ref_corr_forward(cc.backbone.visual, x, dino, grid, pm, num_spatial=1)
    feats = F.normalize(feats, dim=-1)
    logits = (feats @ text.T).T.reshape(-1, *grid)
    want = F.interpolate(logits[None], size=x.shape[-2:], mode='bilinear')[0][:, t:t + 40, l:l + 52]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _write_case(tmp_path, name, ori, seed, n=6):
    ids = _blob_ids(*ori, seed=seed, n=n, unseg_cols=ori[1] // 8)
    save_mask_file(osp.join(str(tmp_path), name + '.npz'), ids)
    return ids


def ref_slide_and_vote(cc, img, ids_ori, ori, text, name_sets, prob_thd, crop, stride):
    """CC corrclip_segmentor.py:123-222 around ``ref_corr_forward`` (pad multiple 16 here)."""
    H, W = img.shape[-2:]
    masks = F.interpolate(ids_ori[None, None].float(), size=(H, W), mode='nearest').int()[0, 0]  # :194
    mean, std = cc.pixel_stats()
    hg = max(H - crop + stride - 1, 0) // stride + 1
    wg = max(W - crop + stride - 1, 0) // stride + 1
    preds = img.new_zeros((text.shape[0], H, W))
    count = img.new_zeros((1, H, W))
    for hi in range(hg):
        for wi in range(wg):
            y1, x1 = hi * stride, wi * stride
            y2, x2 = min(y1 + crop, H), min(x1 + crop, W)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            ci, cm = img[:, y1:y2, x1:x2], masks[y1:y2, x1:x2]
            h, w = ci.shape[-2:]
            pw, ph = (-w) % 16, (-h) % 16
            l, t = pw // 2, ph // 2
            ci = F.pad(ci, (l, pw - l, t, ph - t))
            cm = F.pad(cm[None, None], (l, pw - l, t, ph - t), value=10000)[0, 0]
            raw = ci * std.view(3, 1, 1) + mean.view(3, 1, 1)
            vin = ((raw - IMNET_MEAN.view(3, 1, 1)) / IMNET_STD.view(3, 1, 1))[None]
            dino = ref_dino_qk(cc.proxy.vfm, vin)[0]
            grid = (ci.shape[-2] // 8, ci.shape[-1] // 8)
            feats, _ = ref_corr_forward(cc.backbone.visual, ci, dino, grid, cm, num_spatial=1)
            lg = (F.normalize(feats, dim=-1) @ text.T).T.reshape(-1, *grid)
            lg = F.interpolate(lg[None], size=ci.shape[-2:], mode='bilinear')[0][:, t:t + h, l:l + w]
            preds[:, y1:y2, x1:x2] += lg
            count[:, y1:y2, x1:x2] += 1
    logits = F.interpolate((preds / count)[None], size=ori, mode='bilinear')[0]  # :175-177
    probs = (logits * 40).softmax(0)  # :203-204 (synonym max as this plug-in's name files: a class = its names)
    qi = torch.tensor([c for c, names in enumerate(name_sets) for _ in names])
    probs = torch.stack([probs[qi == c].max(0)[0] for c in range(len(name_sets))])
    pred = probs.argmax(0, keepdim=True)
    pred[probs.max(0, keepdim=True)[0] < prob_thd] = 0  # :213-214
    vals = torch.unique(ids_ori)[1:]  # :216-222, torch.mode
    for v in vals:
        mk = (ids_ori == v)[None]
        pred[mk] = torch.mode(pred[mk])[0]
    return pred


def test_slide_merge_and_vote_against_original_loop(tmp_path):
    m = _model('openai', mask_dir=tmp_path, prob_thd=0.0)
    m.save_seg_logits = True
    ori = (60, 90)
    ids = _write_case(tmp_path, 'a', ori, seed=7)
    g = torch.Generator().manual_seed(8)
    img = torch.randn(1, 3, 44, 66, generator=g)  # test size != original size: masks are resized
    # class embeddings orthogonal to the random model's (nearly constant) mean feature, so that labels vary over
    # the image and the vote has mixed regions to decide
    with torch.no_grad():
        mean_feat = m.extract_feat(F.pad(img[..., :64], (0, 0, 2, 2)), torch.zeros(1, 48, 64, dtype=torch.int32))
    mean_feat = F.normalize(mean_feat.mean(dim=(0, 2, 3)), dim=0)
    emb = torch.randn(len(m.query_names), 32, generator=torch.Generator().manual_seed(4))
    emb = F.normalize(emb - (emb @ mean_feat)[:, None] * mean_feat, dim=-1)
    m.query_embeddings = lambda: emb

    def ds():
        return SegDataSample(metainfo=dict(img_path='/x/a.jpg', img_shape=(44, 66), ori_shape=ori))
    with torch.no_grad():
        text = m.query_embeddings()
        out = m.predict(img, [ds()])[0]
        want = ref_slide_and_vote(m, img[0], ids, ori, text, m.name_sets, 0.0, m.slide_crop, m.slide_stride)
        assert len(torch.unique(want)) >= 3  # the vote has mixed regions to decide
        assert (out.pred_sem_seg.data == want).float().mean() > 0.999
        # a threshold inside the probability range: pixels below it -> 0 before the vote
        thd = float(out.seg_logits.data.max(0)[0].median())
        m.prob_thd = thd
        sample = ds()
        pred = m.predict(img, [sample])[0].pred_sem_seg.data
        want = ref_slide_and_vote(m, img[0], ids, ori, text, m.name_sets, thd, m.slide_crop, m.slide_stride)
    assert (pred == want).float().mean() > 0.999, (pred != want).sum()
    assert 'region_ids' not in sample  # removed after the post-processing


def test_batch_of_two_equals_one_at_a_time(tmp_path):
    m = _model('openai', mask_dir=tmp_path)
    _write_case(tmp_path, 'a', (44, 130), seed=1, n=8)
    _write_case(tmp_path, 'b', (44, 130), seed=2, n=3)
    g = torch.Generator().manual_seed(9)
    img = torch.randn(2, 3, 44, 130, generator=g)  # 3 windows each

    def ds(n):
        return SegDataSample(metainfo=dict(img_path=f'/x/{n}.jpg', img_shape=(44, 130), ori_shape=(44, 130)))
    m.save_seg_logits = True
    with torch.no_grad():
        both = m.predict(img, [ds('a'), ds('b')])
        one = [m.predict(img[i:i + 1], [ds(n)])[0] for i, n in enumerate('ab')]
    for b, o in zip(both, one):
        assert torch.equal(b.pred_sem_seg.data, o.pred_sem_seg.data)
        torch.testing.assert_close(b.seg_logits.data, o.seg_logits.data, rtol=1e-5, atol=1e-6)
    # crops_per_forward=1 vs 8: windows batched differently inside one image
    m.crops_per_forward = 1
    with torch.no_grad():
        single = m.predict(img[:1], [ds('a')])[0]
    torch.testing.assert_close(single.seg_logits.data, one[0].seg_logits.data, rtol=1e-5, atol=1e-6)


def test_bf16_autocast(tmp_path):
    m = _model('openai', mask_dir=tmp_path)
    _write_case(tmp_path, 'a', (44, 66), seed=1)
    img = torch.randn(1, 3, 44, 66, generator=torch.Generator().manual_seed(2))
    ds = lambda: SegDataSample(metainfo=dict(img_path='/x/a.jpg', img_shape=(44, 66), ori_shape=(44, 66)))  # noqa
    m.save_seg_logits = True
    with torch.no_grad():
        ref = m.predict(img, [ds()])[0]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = m.predict(img, [ds()])[0]
    assert torch.isfinite(low.seg_logits.data).all()
    assert (low.pred_sem_seg.data == ref.pred_sem_seg.data).float().mean() > 0.9


# ------------------------------------------------------------------------------------------ bad input
def test_missing_mask_file_names_it_or_is_counted(tmp_path):
    m = _model('openai', mask_dir=tmp_path)
    img = torch.randn(1, 3, 44, 66)
    ds = SegDataSample(metainfo=dict(img_path='/x/nothere.jpg', img_shape=(44, 66), ori_shape=(44, 66)))
    with pytest.raises(MaskFileError, match='nothere.npz'):
        with torch.no_grad():
            m.predict(img, [ds])
    m = _model('openai', mask_dir=tmp_path, proxy=dict(on_missing='skip'))
    m.proxy.reset_report()
    with torch.no_grad():
        out = m.predict(img, [ds])[0]
    assert out.pred_sem_seg.data.shape == (1, 44, 66)
    rep = m.proxy.report()
    assert rep['seen'] == 1 and len(rep['skipped']) == 1 and 'nothere.npz' in rep['skipped'][0]
    from declip_mm.engine.hooks.seg_postprocess_hook import _steps
    assert m.proxy in _steps(m)  # SegPostProcessReportHook logs the skip count at the end of a run


def test_wrong_size_masks_name_the_file(tmp_path):
    m = _model('openai', mask_dir=tmp_path)
    _write_case(tmp_path, 'a', (40, 60), seed=1)
    ds = SegDataSample(metainfo=dict(img_path='/x/a.jpg', img_shape=(44, 66), ori_shape=(44, 66)))
    with pytest.raises(MaskFileError, match=r'a\.npz.*40x60'):
        with torch.no_grad():
            m.predict(torch.randn(1, 3, 44, 66), [ds])


def test_vfm_file_that_does_not_fit_names_the_file(tmp_path):
    bad = tmp_path / 'dino_wrong.pth'
    torch.save({'pos_embed': torch.zeros(1, 5, 3), 'cls_token': torch.zeros(1, 1, 3)}, bad)
    cfg = tiny_model_cfg(TINY_CC_CFG)
    cfg['proxy']['vfm']['checkpoint'] = str(bad)
    with pytest.raises(ValueError, match='dino_wrong.pth'):
        build_seg_model(cfg)
