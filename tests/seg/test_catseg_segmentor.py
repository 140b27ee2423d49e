"""CATSeg segmentor with tiny random CLIPs: trainable rule, text cache, inference batch independence, VOC-21."""
import copy

import pytest
import torch
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

from .conftest import TINY_CATSEG_CFG, build_seg_model, tiny_model_cfg


@pytest.fixture(scope='module')
def eva_model():
    torch.manual_seed(0)
    return build_seg_model(tiny_model_cfg(TINY_CATSEG_CFG))


def openai_cfg():
    from declip_mm.models.backbones import tiny_clip_overrides
    ov = tiny_clip_overrides('openai')
    m = tiny_model_cfg(TINY_CATSEG_CFG)
    m['backbone'] = dict(type='DeCLIPViT', model_name='ViT-B-16', model_overrides=ov, out_indices=(1, 2),
                         out_types=('feats', 'dense'), dense_mode='maskclip_cls', split_qkv=True,
                         trainable=['*attn.q_proj_weight', '*attn.v_proj_weight'])
    m['text_encoder'] = dict(type='DeCLIPTextEncoder', model_name='ViT-B-16', model_overrides=ov, frozen=False,
                             split_qkv=True, trainable=['*attn.q_proj_weight', '*attn.v_proj_weight'])
    return m


def make_batch(model, sizes, with_gt=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for (h, w) in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        ds = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h + 7, w - 5)))
        if with_gt:
            ds.gt_sem_seg = PixelData(data=torch.randint(0, 8, (1, h, w), generator=g))
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def assert_same_labels(a, b, probs):
    """Equal label maps, except at float near-ties of a random tiny model (top-2 margin < 1e-4)."""
    top2 = probs.topk(2, dim=0).values
    tie = (top2[0] - top2[1]) < 1e-4
    assert ((a != b)[0] & ~tie).sum() == 0


def grads_after_step(model, sizes=((128, 128), (128, 128))):
    model.train()
    data = model.data_preprocessor(make_batch(model, sizes), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    model.zero_grad()
    losses['loss_sem_seg'].backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_trainable_rule_declip_eva(eva_model):
    m = eva_model
    with_grad = grads_after_step(m)
    clip_grad = {n for n in with_grad if n.startswith(('backbone.', 'text_encoder.'))}
    nblocks = m.backbone.num_blocks
    vis = {n for n in clip_grad if n.startswith('backbone.')}
    txt = {n for n in clip_grad if n.startswith('text_encoder.')}
    assert len(vis) == 2 * nblocks and all(n.endswith(('attn.q_proj.weight', 'attn.v_proj.weight')) for n in vis)
    assert len(txt) == 2 and all(n.endswith('attn.in_proj_weight') for n in txt)  # DeCLIP: fused text QKV
    # requires_grad matches exactly (biases, K, out proj, MLP, norms, embeddings frozen)
    req = {n for n, p in m.named_parameters() if p.requires_grad and n.startswith(('backbone.', 'text_encoder.'))}
    assert req == vis | txt
    head = {n for n, _ in m.decode_head.named_parameters()}
    assert {n[len('decode_head.'):] for n in with_grad if n.startswith('decode_head.')} <= head
    assert 'decode_head.upsample1.weight' in with_grad and 'decode_head.conv1.weight' in with_grad
    assert 'decode_head.head.weight' in with_grad


def test_trainable_rule_openai_qv_only_and_k_unchanged_after_step():
    m = build_seg_model(openai_cfg())
    with_grad = grads_after_step(m)
    clip = {n for n in with_grad if n.startswith(('backbone.', 'text_encoder.'))}
    req = {n for n, p in m.named_parameters() if p.requires_grad and n.startswith(('backbone.', 'text_encoder.'))}
    assert req and all(n.endswith(('attn.q_proj_weight', 'attn.v_proj_weight')) for n in req)
    assert len([n for n in req if n.startswith('backbone.')]) == 2 * m.backbone.num_blocks
    assert len([n for n in req if n.startswith('text_encoder.')]) == 2 * 2  # 2 text layers x (q, v)
    # gradients reach all of them except the last visual block's Q: the official dense path (value path + CLS
    # residual) does not use it
    last_q = m.backbone.block_param_names(-1, 'q')
    assert clip == req - {'backbone.' + n for n in last_q if n.endswith('q_proj_weight')}
    # one AdamW step with the config's weight decay: K weights (frozen) do not move, Q does
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-4)
    k_name = [n for n, _ in m.named_parameters() if n.startswith('backbone.') and n.endswith('k_proj_weight')][0]
    q_name = k_name.replace('k_proj_weight', 'q_proj_weight')
    P = dict(m.named_parameters())
    k0, q0 = P[k_name].detach().clone(), P[q_name].detach().clone()
    opt.step()
    assert torch.equal(P[k_name], k0) and not torch.equal(P[q_name], q0)


def test_text_embeddings_recomputed_on_new_classes_and_new_weights(eva_model):
    m = eva_model.eval()
    with torch.no_grad():
        a = m.text_embeddings(['sky', 'car'])
        b = m.text_embeddings(['sky', 'car'])
        assert torch.equal(a, b)
        c = m.text_embeddings(['sky', 'tree'])
        assert torch.equal(c[0], a[0]) and not torch.allclose(c[1], a[1])
        # in-place weight update (an optimizer step) invalidates the cache
        p = next(p for n, p in m.text_encoder.named_parameters() if n.endswith('in_proj_weight'))
        p0 = p.clone()
        p.add_(torch.randn_like(p))  # (a constant shift would cancel against the LayerNorm'd input)
        d = m.text_embeddings(['sky', 'car'])
        p.copy_(p0)
    assert not torch.allclose(a, d)
    # first synonym only, single template
    with torch.no_grad():
        e = m.text_embeddings(['building, edifice'])
        f = m.text_encoder.encode_sentences(['A photo of a building in the scene'])
    assert torch.allclose(e[:, 0], f, atol=1e-6)


def test_predict_batch_independence_mixed_sizes(eva_model):
    m = eva_model.eval()
    sizes = [(112, 150), (96, 120)]
    batch = make_batch(m, sizes, with_gt=False, seed=3)
    data = m.data_preprocessor(copy.deepcopy(batch), False)
    m.save_seg_logits = True
    with torch.no_grad():
        both = m.predict(data['inputs'], data['data_samples'])
        for i in range(2):
            one = dict(inputs=[batch['inputs'][i]], data_samples=[copy.deepcopy(batch['data_samples'][i])])
            d1 = m.data_preprocessor(one, False)
            alone = m.predict(d1['inputs'], d1['data_samples'])[0]
            assert both[i].seg_logits.data.shape[-2:] == (sizes[i][0] + 7, sizes[i][1] - 5)  # ori_shape
            assert torch.allclose(both[i].seg_logits.data, alone.seg_logits.data, atol=1e-5)
            assert_same_labels(both[i].pred_sem_seg.data, alone.pred_sem_seg.data, alone.seg_logits.data)
    m.save_seg_logits = False


def test_predict_many_classes_topk(eva_model):
    m = eva_model.eval()
    old = m.test_class_names
    m.set_test_class_names([f'class {i}' for i in range(40)])  # > pad_len 16: per-window top-k
    batch = make_batch(m, [(96, 128), (96, 128)], with_gt=False)
    data = m.data_preprocessor(batch, False)
    with torch.no_grad():
        both = m.predict(data['inputs'], data['data_samples'])
        alone = m.predict(data['inputs'][1:], data['data_samples'][1:])
    diff = both[1].pred_sem_seg.data != alone[0].pred_sem_seg.data
    assert diff.float().mean() < 0.01  # random tiny model: only float near-ties may flip
    assert both[0].pred_sem_seg.data.max() < 40
    m.test_class_names = old


def test_voc21_background_collapse(eva_model):
    m = eva_model
    m.background_collapse = dict(num_foreground=2, background_first=True)
    probs = torch.zeros(5, 1, 3)
    probs[0, 0, 0] = 1  # fg prompt 0 -> label 1
    probs[1, 0, 1] = 1  # fg prompt 1 -> label 2
    probs[4, 0, 2] = 1  # "stuff" prompt 4 -> background 0
    label, merged = m._collapse(probs)
    assert label.tolist() == [[[1, 2, 0]]]
    assert merged.shape == (3, 1, 3) and merged[0, 0, 2] == 1
    m.background_collapse = dict(num_foreground=2, background_first=False)
    label, _ = m._collapse(probs)
    assert label.tolist() == [[[0, 1, 2]]]  # CAT-Seg layout: background = 20 (here 2)
    m.background_collapse = None


def test_bad_config_errors():
    cfg = tiny_model_cfg(TINY_CATSEG_CFG)
    cfg['backbone'] = dict(cfg['backbone'], out_indices=(2, ))
    with pytest.raises(ValueError, match='two out_indices'):
        build_seg_model(cfg)
    cfg = tiny_model_cfg(TINY_CATSEG_CFG, class_names='no_such_list')
    with pytest.raises(FileNotFoundError):
        build_seg_model(cfg)


def test_views_follow_the_official_unfold_order(eva_model):
    """Windows in ``nn.Unfold`` order (row-major, as CAT-Seg's ``rearrange(unfold(image))``) + the global view.

    Catches transposing the window loops in ``CATSeg._views`` (the fold would put windows in the wrong place).
    """
    import torch.nn as nn
    import torch.nn.functional as F
    m = eva_model
    old = m.slide_cfg
    m.slide_cfg = dict(out_size=40, kernel=24, stride=16, global_view=True)
    img = torch.randn(3, 30, 50)
    views = m._views(img)
    big = F.interpolate(img[None], size=(40, 40), mode='bilinear', align_corners=False)
    ref = nn.Unfold(kernel_size=24, stride=16)(big)[0].t().reshape(-1, 3, 24, 24)
    assert views.shape == (5, 3, 24, 24)
    assert torch.equal(views[:4], ref)
    assert torch.allclose(views[4], F.interpolate(img[None], size=(24, 24), mode='bilinear', align_corners=False)[0])
    m.slide_cfg = old


def test_sliding_inference_reassembles_the_image(eva_model, monkeypatch):
    """With a fake network whose logit is the view's first channel, the merged probabilities must equal
    (sigmoid(640-resize) + resized sigmoid(global view)) / 2 at the original size (computed here directly)."""
    import torch.nn.functional as F
    m = eva_model.eval()
    old = m.slide_cfg
    m.slide_cfg = dict(out_size=40, kernel=24, stride=16, global_view=True)
    monkeypatch.setattr(m, 'encode_decode', lambda v, batch_data_samples=None, class_names=None: v[:, :1])
    img = torch.randn(1, 3, 30, 50)
    meta = dict(img_shape=(30, 50), ori_shape=(33, 47))
    out = m.inference_probs(img, [meta])[0]
    big = F.interpolate(img, size=(40, 40), mode='bilinear', align_corners=False)[:, :1].sigmoid()
    small = F.interpolate(img, size=(24, 24), mode='bilinear', align_corners=False)[:, :1].sigmoid()
    glob = F.interpolate(small, size=(40, 40), mode='bilinear', align_corners=False)
    ref = F.interpolate((big + glob) / 2, size=(33, 47), mode='bilinear', align_corners=False)[0]
    assert out.shape == (1, 33, 47)
    assert torch.allclose(out, ref, atol=1e-6)
    m.slide_cfg = old


def test_guidance_taps_are_the_backbone_blocks_in_ascending_order(eva_model):
    """``extract_feat`` hands the shallow tap first (out_indices sorted), as the head expects."""
    m = eva_model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        _, taps = m.extract_feat(x)
        feats = m.backbone.extract(x, outputs=('feats', ))['feats']
    idx = m.backbone.out_indices
    assert list(idx) == sorted(idx) and len(taps) == 2
    assert torch.equal(taps[0], feats[0]) and torch.equal(taps[1], feats[1])
