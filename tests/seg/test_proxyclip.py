"""ProxyCLIP in the training-free segmentor, pinned against plain-torch computations written here from the original
code (mc-lan/ProxyCLIP @ e7b767f; "PX file:line" below), never against the code under test.

Which test catches which one-line bug:

* ``test_proxy_attention_formula_and_defaults``: gamma / beta defaults (1.2 / 3.0) changed or swapped, the threshold
  direction flipped (``s > 0`` excluded), the mean taken per row / per column instead of over the whole matrix,
  softmax over queries instead of keys, the L2 normalisation over tokens instead of channels.
* ``test_proxy_mean_is_per_crop``: the mean over the whole batch (the original's batch is one crop).
* ``test_fully_excluded_row_attends_to_itself``: the diagonal guard dropped (NaN rows), or applied when
  ``keep_diagonal=False`` (which must give the original's NaN row).
* ``test_extract_attended_matches_original_last_block`` (OpenAI, non-square grid): CLS kept in V or the wrong token
  dropped (``v[:, :-1]``), h / w swapped in the V reshape, align_corners / nearest resize, a residual or FFN added,
  ``ln_post`` / ``proj`` skipped, heads mixed up.
* ``test_extract_attended_eva_decoupled_output``: DeCLIP's EVA content path (inner LN + proj, no residual / FFN) or
  the CLS handling changed.
* ``test_dino_scale_pos_embed``: the ``+ 0.1`` / scale-factor form replaced by a size resize.
* ``test_vfm_input``: the un-normalisation with the wrong statistics, ImageNet statistics swapped, SAM's 1024 resize
  missing, the patch-multiple cut on the wrong side.
* ``test_crop_logits_at_vfm_grid``: classification at the CLIP grid instead of the VFM grid, padding not cut or cut
  on the wrong side, the CLIP input not cut to a patch multiple.
* ``test_slide_merge_against_original_loop``: window merge order -- probabilities instead of logits averaged,
  resizing each window to ``ori_shape`` before averaging, the overlap count missing, windows not shifted to the
  border, and the post-processing (x logit_scale, softmax, synonym max, ``prob_thd`` -> 0).
* ``test_batch_of_three_equals_one_at_a_time``: per-batch instead of per-crop state; ``test_bf16_autocast``: the
  fp32 guard of the attention removed.
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample

from declip_mm.models.segmentors.proxy_attention import VFMProxyAttention, proxy_attention
from declip_mm.models.segmentors.zeroshot_seg import slide_grid, symmetric_pad

from .conftest import (IMNET_MEAN, IMNET_STD, REPO, build_peaky_vfm_model, build_seg_model, ref_pos_embed,
                       tiny_model_cfg, tiny_openai)

TINY_PX_CFG = osp.join(REPO, 'configs', 'zeroshot_seg', 'proxyclip_tiny-eva02_tiny-dino-b8_ov-scenes-synthetic.py')


def _model(family='openai', **overrides):
    cfg = tiny_model_cfg(TINY_PX_CFG)
    if family == 'openai':
        tiny_openai(cfg)
    cfg.update(overrides)
    return build_peaky_vfm_model(cfg)


@pytest.fixture(scope='module')
def px():
    return _model('openai')


# ------------------------------------------------------------------------------------------ independent pieces
def ref_proxy_attention(ex_feats, beta=1.2, gamma=3.0, num_heads=2):
    """PX open_clip/transformer.py:569-578 for one crop (batch 1), heads repeated as the original does."""
    B, C, H, W = ex_feats.shape
    assert B == 1
    q_k = F.normalize(ex_feats.flatten(2, 3), dim=1)
    similarity = torch.einsum('b c m, b c n -> b m n', q_k, q_k)
    similarity = (similarity - torch.mean(similarity) * beta) * gamma
    similarity[similarity < 0.0] = float('-inf')
    mask = similarity.unsqueeze(1).repeat(1, num_heads, 1, 1).reshape(B * num_heads, H * W, H * W)
    return F.softmax(mask, dim=-1)


def ref_openai_proxy_forward(visual, img, A_heads, grid):
    """PX open_clip/transformer.py:503-538 with ``custom_attn`` :560-587, written out for one image.

    A_heads: (heads, M, M) attention of the crop; grid: the VFM grid (I, J)."""
    p = visual.conv1.kernel_size[0]
    gh, gw = img.shape[-2] // p, img.shape[-1] // p
    x = visual.conv1(img[None]).flatten(2).transpose(1, 2)  # (1, gh*gw, C)
    x = torch.cat([visual.class_embedding.reshape(1, 1, -1), x], dim=1)
    x = x + ref_pos_embed(visual.positional_embedding, gh, gw)[None]
    x = visual.ln_pre(x)
    blocks = visual.transformer.resblocks
    for blk in blocks[:-1]:
        x = blk(x)  # open_clip's own block (batch first)
    last = blocks[-1]
    y = last.ln_1(x)[0]  # (1+N, C)
    C = y.shape[-1]
    nh = last.attn.num_heads
    d = C // nh
    v = F.linear(y, last.attn.in_proj_weight, last.attn.in_proj_bias)[:, 2 * C:]  # :566
    outs = []
    for h in range(nh):  # :567, :580-584 head by head
        vh = v[1:, h * d:(h + 1) * d].reshape(gh, gw, d).permute(2, 0, 1)[None]  # CLS dropped, (1, d, gh, gw)
        vh = F.interpolate(vh, size=grid, mode='bilinear', align_corners=False)[0].reshape(d, -1).T  # (M, d)
        outs.append(A_heads[h] @ vh)
    o = last.attn.out_proj(torch.cat(outs, dim=1))  # :585-586, no residual, no FFN
    return visual.ln_post(o) @ visual.proj  # :535-536, (M, D)


def ref_crop_logits(model, crop, text, mean, std):
    """PX proxyclip_segmentor.py:107-186 for one padded crop (3, h, w) -> (Q, h, w)."""
    raw = crop * std.view(3, 1, 1) + mean.view(3, 1, 1)
    vin = (raw - IMNET_MEAN.view(3, 1, 1)) / IMNET_STD.view(3, 1, 1)  # :79-80, :113
    vp = model.proxy.vfm.patch_size
    vin = vin[:, :vin.shape[1] // vp * vp, :vin.shape[2] // vp * vp]  # the stride-p patch embedding's floor
    with torch.no_grad():
        ex = model.proxy.vfm(vin[None])  # (1, C, I, J)
    I, J = ex.shape[-2:]
    nh = model.backbone.num_heads
    A = ref_proxy_attention(ex, num_heads=nh)
    cp = model.backbone.patch_size
    clip_in = crop[:, :crop.shape[1] // cp * cp, :crop.shape[2] // cp * cp]
    feats = ref_openai_proxy_forward(model.backbone.visual, clip_in, A, (I, J))
    feats = feats / feats.norm(dim=-1, keepdim=True)  # :177
    logits = (feats @ text.T).T.reshape(-1, I, J)  # :178-179
    return F.interpolate(logits[None], size=crop.shape[-2:], mode='bilinear')[0]  # :181-182


# ------------------------------------------------------------------------------------------ attention
def test_proxy_attention_formula_and_defaults():
    g = torch.Generator().manual_seed(0)
    # two clusters of different sizes plus noise: row means differ, so a per-row mean would change the mask
    base = torch.randn(2, 16, generator=g)
    idx = torch.tensor([0] * 7 + [1] * 5)
    feats = (base[idx] + 0.6 * torch.randn(12, 16, generator=g)).T.reshape(1, 16, 3, 4)
    ref = ref_proxy_attention(feats, num_heads=1)[0]
    got = proxy_attention(feats)[0]  # defaults
    assert torch.isinf(torch.log(ref)).any() and (ref > 0).sum() > 12  # some excluded, some kept
    assert torch.allclose(got, ref, atol=1e-6)
    assert torch.allclose(proxy_attention(feats, beta=0.7, gamma=5.0)[0],
                          ref_proxy_attention(feats, 0.7, 5.0, 1)[0], atol=1e-6)
    vp = VFMProxyAttention(dict(type='VFMTeacher', name='dino_b8', model_kwargs=dict(embed_dim=32, depth=1,
                                                                                        num_heads=2)))
    assert (vp.beta, vp.gamma, vp.input_size, vp.tap) == (1.2, 3.0, None, 'tokens')
    from mmengine.config import Config
    for path in ('proxyclip_vitb16_dino-b8_voc21-336.py', 'proxyclip_eva02-b16-declip_dino-b8_ade150-448.py'):
        proxy = Config.fromfile(osp.join(REPO, 'configs', 'zeroshot_seg', path)).model.proxy
        assert (proxy.beta, proxy.gamma) == (1.2, 3.0)


def test_proxy_mean_is_per_crop():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(1, 8, 3, 3, generator=g)
    b = torch.randn(1, 8, 3, 3, generator=g) + 2.0  # a very different mean similarity
    both = proxy_attention(torch.cat([a, b]))
    assert torch.allclose(both[0], ref_proxy_attention(a, num_heads=1)[0], atol=1e-6)
    assert torch.allclose(both[1], ref_proxy_attention(b, num_heads=1)[0], atol=1e-6)


def test_fully_excluded_row_attends_to_itself():
    f = torch.randn(1, 4, 2, 3)
    f[..., 0, 0] = 0  # a zero feature: its row is all 0 < beta * mean -> the original gives NaN
    A = proxy_attention(f)
    assert torch.isfinite(A).all()
    assert A[0, 0, 0] == 1 and A[0, 0, 1:].sum() == 0
    ref = ref_proxy_attention(f, num_heads=1)[0]
    assert torch.isnan(ref[0]).all() and torch.allclose(A[0, 1:], ref[1:], atol=1e-6)  # other rows unchanged
    # keep_diagonal=False is the original's rule, NaN row included
    assert torch.allclose(proxy_attention(f, keep_diagonal=False)[0], ref, atol=1e-6, equal_nan=True)


# ------------------------------------------------------------------------------------------ last block
def test_extract_attended_matches_original_last_block(px):
    bb = px.backbone
    img = torch.randn(3, 48, 80)  # a 3 x 5 CLIP grid (non-square, non-native: DINO-style pos resize)
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(1, 8, 6, 10, generator=g)  # a VFM grid of 6 x 10
    A = proxy_attention(feats)
    with torch.no_grad():
        got = bb.extract_attended(img[None], A, (6, 10))  # (1, D, 6, 10)
        ref = ref_openai_proxy_forward(bb.visual, img, A.expand(bb.num_heads, -1, -1), (6, 10))
        per_head = bb.extract_attended(img[None], A[:, None].expand(-1, bb.num_heads, -1, -1), (6, 10))
    assert got.shape == (1, bb.embed_dim, 6, 10)
    assert torch.allclose(got.flatten(2)[0].T, ref, atol=1e-4), (got.flatten(2)[0].T - ref).abs().max()
    assert torch.allclose(per_head, got, atol=1e-5)


def test_extract_attended_eva_decoupled_output():
    m = _model('eva')
    bb = m.backbone
    img = torch.randn(1, 3, 32, 48)
    A = proxy_attention(torch.randn(1, 8, 4, 6))
    with torch.no_grad():
        got = bb.extract_attended(img, A, (4, 6))
        x, hw, _, _ = bb.last_block_input(img)
        blk = bb.visual.trunk.blocks[-1]
        y = blk.norm1(x)[0]
        a = blk.attn
        if a.qkv is not None:
            bias = None if a.q_bias is None else torch.cat((a.q_bias, a.k_bias, a.v_bias))
            v = F.linear(y, a.qkv.weight, bias)[:, 2 * y.shape[-1]:]
        else:
            v = a.v_proj(y)
        v = v[1:].T.reshape(1, -1, *hw)  # CLS dropped
        v = F.interpolate(v, size=(4, 6), mode='bilinear', align_corners=False)[0].reshape(v.shape[1], -1).T
        o = a.proj(a.norm(A[0] @ v))  # DeCLIP's content path: inner LN + proj; no residual, FFN, layer scale
        t = bb.visual.trunk
        ref = t.head(t.norm(o))
    assert torch.allclose(got.flatten(2)[0].T, ref, atol=1e-4)


def test_dino_scale_pos_embed(px):
    from declip_mm.models.backbones.towers import resize_pos_embed
    pos = px.backbone.visual.positional_embedding
    for gh, gw in ((21, 21), (3, 5), (14, 14)):
        got = resize_pos_embed(pos, (14, 14), (gh, gw), mode='dino_scale')
        assert torch.allclose(got, ref_pos_embed(pos, gh, gw), atol=1e-6)
    assert not torch.allclose(resize_pos_embed(pos, (14, 14), (21, 21), mode='dino_scale'),
                              resize_pos_embed(pos, (14, 14), (21, 21), mode='size'), atol=1e-3)


# ------------------------------------------------------------------------------------------ VFM input, crops
def test_vfm_input(px):
    mean, std = px.pixel_stats()
    raw = torch.rand(2, 3, 40, 45) * 255
    crops = (raw - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    got = px.proxy.vfm_input(crops, mean, std)
    ref = ((raw - IMNET_MEAN.view(1, 3, 1, 1)) / IMNET_STD.view(1, 3, 1, 1))[..., :40, :40]  # 45 -> 40 (patch 8)
    assert got.shape == (2, 3, 40, 40) and torch.allclose(got, ref, atol=1e-4)
    sam = VFMProxyAttention(dict(type='VFMTeacher', name='sam_b', model_kwargs=dict(
        embed_dim=32, depth=1, num_heads=2, img_size=64, global_attn_indexes=[0], window_size=4)))
    assert sam.input_size == (1024, 1024)  # ProxyCLIP resizes every crop to SAM's 1024 x 1024 (PX :119-122)
    out = sam.vfm_input(crops, mean, std)
    assert out.shape == (2, 3, 1024, 1024)
    full = (raw - IMNET_MEAN.view(1, 3, 1, 1)) / IMNET_STD.view(1, 3, 1, 1)
    assert torch.allclose(out, F.interpolate(full, size=(1024, 1024), mode='bilinear', align_corners=False),
                          atol=1e-4)


def test_crop_logits_at_vfm_grid(px):
    text = px.query_embeddings()
    mean, std = px.pixel_stats()
    m = copy.copy(px)
    m.pad_multiple = 56
    g = torch.Generator().manual_seed(4)
    crop = torch.randn(3, 40, 50, generator=g)
    l, r, t, b = symmetric_pad(40, 50, 56)
    padded = F.pad(crop, (l, r, t, b))  # 56 x 56: CLIP input 48 x 48 (3 x 3 grid), DINO-B/8 grid 7 x 7
    with torch.no_grad():
        ref = ref_crop_logits(m, padded, text, mean, std)[:, t:t + 40, l:l + 50]
        got = m.crop_logits(crop[None], text)[0]
        feats = m.extract_feat(padded[None])
    assert feats.shape[-2:] == (7, 7)  # classified at the VFM grid, not at the 3 x 3 CLIP grid
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()


def _ref_slide(model, img, text, mean, std, ori):
    """PX proxyclip_segmentor.py:188-244 (forward_slide) and :267-281 (postprocess_result) for one image."""
    h_crop = w_crop = model.slide_crop
    h_stride = w_stride = model.slide_stride
    _, h_img, w_img = img.shape
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = img.new_zeros((1, text.shape[0], h_img, w_img))
    count = img.new_zeros((1, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * h_stride, w_idx * w_stride
            y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            crop = img[:, y1:y2, x1:x2]
            H, W = crop.shape[1:]
            pw, ph = (-W) % model.pad_multiple, (-H) % model.pad_multiple  # compute_padsize :294-306
            pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
            logit = ref_crop_logits(model, F.pad(crop, pad), text, mean, std)[None]
            logit = logit[:, :, pad[2]:pad[2] + H, pad[0]:pad[0] + W]
            preds += F.pad(logit, (x1, preds.shape[3] - x2, y1, preds.shape[2] - y2))
            count[:, :, y1:y2, x1:x2] += 1
    logits = F.interpolate(preds / count, size=ori, mode='bilinear')[0]
    probs = (logits * model.logit_scale).softmax(0)
    qi = model.query_idx
    onehot = F.one_hot(qi).T.view(model.num_classes, len(qi), 1, 1)
    probs = (probs[None] * onehot).max(1)[0]
    return logits, probs


def _ref_labels(probs, prob_thd):
    """PX proxyclip_segmentor.py:280-281."""
    pred = probs.argmax(0, keepdim=True)
    pred[probs.max(0, keepdim=True)[0] < prob_thd] = 0
    return pred


def test_slide_merge_against_original_loop(px):
    m = copy.copy(px)
    m.slide_crop, m.slide_stride, m.pad_multiple = 48, 24, 16
    m.logit_scale = 40.0
    m.save_seg_logits = True
    text = m.query_embeddings()
    mean, std = m.pixel_stats()
    g = torch.Generator().manual_seed(5)
    img = torch.randn(3, 64, 90, generator=g)  # 2 x 4 windows, the last column shifted to the border
    ori = (70, 101)
    with torch.no_grad():
        ref_logits, ref_probs = _ref_slide(m, img, text, mean, std, ori)
        m.prob_thd = ref_probs.max(0)[0].median().item()  # half the pixels fall back to class 0
        ref_pred = _ref_labels(ref_probs, m.prob_thd)
        got = F.interpolate(m.slide_logits(img, text)[None], size=ori, mode='bilinear', align_corners=False)[0]
        ds = m.predict(img[None], [SegDataSample(metainfo=dict(img_shape=(64, 90), ori_shape=ori))])[0]
    assert torch.allclose(got, ref_logits, atol=1e-4)
    assert torch.allclose(ds.seg_logits.data, ref_probs, atol=1e-4)
    assert (ref_pred == 0).float().mean() > 0.3 and (ref_pred != 0).any()
    assert (ds.pred_sem_seg.data != ref_pred).float().mean() < 1e-3


# ------------------------------------------------------------------------------------------ batches, dtypes
def test_batch_of_three_equals_one_at_a_time(px):
    m = copy.copy(px)
    m.slide_crop, m.slide_stride, m.pad_multiple = 48, 24, 56
    m.save_seg_logits = True
    g = torch.Generator().manual_seed(6)
    imgs = [torch.randint(0, 256, s, generator=g, dtype=torch.uint8) for s in ((3, 60, 80), (3, 40, 44),
                                                                              (3, 72, 50))]
    metas = [dict(img_shape=(60, 80), ori_shape=(60, 80)), dict(img_shape=(40, 44), ori_shape=(50, 55)),
             dict(img_shape=(72, 50), ori_shape=(72, 50))]

    def run(idx):
        batch = dict(inputs=[imgs[i] for i in idx], data_samples=[SegDataSample(metainfo=metas[i]) for i in idx])
        d = m.data_preprocessor(batch, False)
        return m.predict(d['inputs'], d['data_samples'])
    together = run([0, 1, 2])
    for i in range(3):
        alone = run([i])[0]
        assert together[i].seg_logits.data.shape[-2:] == metas[i]['ori_shape']
        assert torch.allclose(together[i].seg_logits.data, alone.seg_logits.data, atol=1e-5)
        assert torch.equal(together[i].pred_sem_seg.data, alone.pred_sem_seg.data)


def test_bf16_autocast(px):
    feats = torch.randn(2, 8, 4, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        A = proxy_attention(feats.bfloat16())
    assert A.dtype == torch.float32
    assert torch.allclose(A, proxy_attention(feats.bfloat16().float()), atol=1e-6)
    m = copy.copy(px)
    m.slide_crop, m.slide_stride = 48, 24
    img = torch.randn(1, 3, 56, 64)
    text = m.query_embeddings()
    with torch.no_grad():
        ref = m.slide_logits(img[0], text)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got = m.slide_logits(img[0], text)
    assert torch.isfinite(got).all()
    assert (got.float() - ref).abs().max() < 0.05 * ref.abs().max()


# ------------------------------------------------------------------------------------------ bad input
def test_vfm_file_that_does_not_fit_names_the_file(tmp_path):
    from declip_mm.models.vfm import VFMTeacher
    torch.manual_seed(0)
    other = VFMTeacher('dino_b16', model_kwargs=dict(embed_dim=32, depth=1, num_heads=2))  # patch 16, width 32
    path = str(tmp_path / 'dino_vitbase16_pretrain.pth')
    torch.save(other.model.state_dict(), path)
    cfg = tiny_model_cfg(TINY_PX_CFG)
    cfg['proxy']['vfm']['checkpoint'] = path  # the tiny config's VFM is a width-64 B/8
    with pytest.raises(ValueError, match='dino_vitbase16_pretrain.pth'):
        build_seg_model(cfg)
    cfg['proxy']['vfm']['checkpoint'] = str(tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_seg_model(cfg)
