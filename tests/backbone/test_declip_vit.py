"""DeCLIPViT: equivalence with open_clip / timm, decoupled-mode formulas, context layout, sizes, freezing."""
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F

from declip_mm.models.backbones import DECOUPLED_MODES, DeCLIPViT, tiny_clip_overrides

torch.manual_seed(0)


def _save_openclip(tmp_path, name, **kw):
    model = open_clip.create_model(name, pretrained=None, **kw).eval()
    path = tmp_path / f'{name}.pt'
    torch.save(model.state_dict(), path)
    return model, str(path)


@pytest.fixture(scope='module')
def full_models(tmp_path_factory):
    """Full-size ViT-B-16 (QuickGELU, as OpenAI weights) and EVA02-B-16 with random weights."""
    tmp = tmp_path_factory.mktemp('ckpt')
    torch.manual_seed(1)
    out = {}
    for name, kw in (('ViT-B-16', dict(force_quick_gelu=True)), ('EVA02-B-16', {})):
        ref, path = _save_openclip(tmp, name, **kw)
        bb = DeCLIPViT(name, checkpoint=path, out_indices=(5, 11), dense_mode='vanilla',
                       out_types=('feats', 'dense', 'cls'), frozen=True)
        out[name] = (ref, bb)
    return out


@pytest.mark.parametrize('name', ['ViT-B-16', 'EVA02-B-16'])
def test_vanilla_matches_open_clip_encode_image(full_models, name):
    ref, bb = full_models[name]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = ref.encode_image(x)
        got = bb.extract(x)
    assert got['cls'].shape == (2, 512)
    assert (got['cls'] - want).abs().max() < 1e-4
    # patch tokens: the dense map in vanilla mode is final-norm + projection of the library's own tokens
    with torch.no_grad():
        if name == 'EVA02-B-16':
            tokens = ref.visual.trunk.forward_features(x)[:, 1:]
            dense_ref = ref.visual.trunk.head(tokens)
        else:
            ref.visual.output_tokens = True
            _, tokens = ref.visual(x)
            ref.visual.output_tokens = False
            dense_ref = tokens @ ref.visual.proj
    dense = got['dense'].flatten(2).transpose(1, 2)
    assert dense.shape == (2, 196, 512)
    assert (dense - dense_ref).abs().max() < 1e-4
    assert [f.shape for f in got['feats']] == [(2, 768, 14, 14)] * 2


def test_eva_non_square_matches_timm_dynamic_path(full_models):
    import timm
    _, bb = full_models['EVA02-B-16']
    dyn = timm.create_model('eva02_base_patch16_clip_224', pretrained=False, num_classes=512,
                            dynamic_img_size=True).eval()
    dyn.load_state_dict(bb.visual.trunk.state_dict())
    aa = DeCLIPViT('EVA02-B-16', dense_mode='vanilla', out_types=('cls', 'dense'), pos_embed_antialias=True,
                   frozen=True)
    aa.visual.load_state_dict(bb.visual.state_dict())
    x = torch.randn(1, 3, 224, 320)
    with torch.no_grad():
        feats = dyn.forward_features(x)
        want_cls = dyn.forward_head(feats)
        want_dense = dyn.head(feats[:, 1:])
        got = aa.extract(x)
    assert (got['cls'] - want_cls).abs().max() < 1e-4
    assert got['dense'].shape == (1, 512, 14, 20)
    assert (got['dense'].flatten(2).transpose(1, 2) - want_dense).abs().max() < 1e-4


def _official_eva_rope(h, w, head_dim, pt=16, theta=10000.):
    """EVA-CLIP's VisionRotaryEmbeddingFast (rope.py; square grids there, here per axis) -> (cos, sin), (h*w, d):
    dim = d/2, freqs = 1/theta^(arange(0, dim, 2)/dim), positions arange(n)/n*pt, each freq repeated twice, the row
    axis first."""
    dim = head_dim // 2
    freqs = 1. / (theta ** (torch.arange(0, dim, 2)[:dim // 2].float() / dim))
    fh = torch.einsum('i,f->if', torch.arange(h) / h * pt, freqs).repeat_interleave(2, -1)  # (h, dim)
    fw = torch.einsum('i,f->if', torch.arange(w) / w * pt, freqs).repeat_interleave(2, -1)  # (w, dim)
    f = torch.cat([fh[:, None, :].expand(h, w, dim), fw[None, :, :].expand(h, w, dim)], dim=-1).reshape(h * w, -1)
    return f.cos(), f.sin()


@pytest.mark.parametrize('hw', [(14, 14), (35, 35), (40, 40), (10, 18)])
def test_eva_rope_matches_official(hw, full_models):
    """The RoPE the forward uses (the trunk's own rotary module for the input grid) = EVA-CLIP's formula."""
    _, bb = full_models['EVA02-B-16']
    cos, sin = _official_eva_rope(*hw, 64)
    with torch.no_grad():
        _, got_hw, ours = bb._tower.embed(torch.zeros(1, 3, 16 * hw[0], 16 * hw[1]))
    assert got_hw == hw and ours.shape == (hw[0] * hw[1], 128)
    assert torch.allclose(ours[:, 64:], cos, atol=1e-5) and torch.allclose(ours[:, :64], sin, atol=1e-5)


def test_large_and_rectangular_inputs_run(full_models):
    _, bb = full_models['EVA02-B-16']
    x = torch.randn(1, 3, 448, 640)
    out = bb.extract(x, ('feats', 'dense', 'cls'))
    assert out['dense'].shape == (1, 512, 28, 40)
    assert out['feats'][0].shape == (1, 768, 28, 40)
    assert torch.isfinite(out['dense']).all()
    with pytest.raises(ValueError, match='not a multiple of the patch size'):
        bb.extract(torch.randn(1, 3, 230, 224))


# ----------------------------------------------------------------------------- decoupled modes (tiny models)
def _tiny(family, **kw):
    torch.manual_seed(2)
    bb = DeCLIPViT('EVA02-B-16' if family == 'eva' else 'ViT-B-16', model_overrides=tiny_clip_overrides(family), **kw)
    # make biases / norms non-trivial and attention peaky (random init gives near-uniform softmax), so that a
    # wrong formula (RoPE added, CLS dropped, a missing scale) cannot hide behind zeros, ones and flat attention
    with torch.no_grad():
        for n, p in bb.named_parameters():
            if n.endswith('bias') or 'norm' in n or 'ln_' in n:
                p.add_(0.1 * torch.randn_like(p))
            if any(k in n for k in ('q_proj', 'k_proj', 'v_proj', 'in_proj_weight')) and p.dim() == 2:
                p.mul_(8.0)
            if n.endswith(('trunk.head.weight', 'visual.proj')):  # timm scales the EVA head init by 1e-3
                p.normal_(0, 0.1)
    return bb.eval()


def _reference_last_block(bb, x_in, mode, scale, with_rope=False, drop_cls=False):
    """Direct re-computation of the decoupled block from its weights (per head, explicit softmax)."""
    t = bb._tower
    blk = t.blocks[-1]
    B, N, C = x_in.shape
    h = bb.num_heads
    d = C // h
    if bb.family == 'eva':
        y = blk.norm1(x_in)
        a = blk.attn
        Wq, bq = a.q_proj.weight, a.q_proj.bias
        Wk, bk = a.k_proj.weight, torch.zeros(C)
        Wv, bv = a.v_proj.weight, a.v_proj.bias
    else:
        y = blk.ln_1(x_in)
        Wq, Wk, Wv = blk.attn.in_proj_weight.chunk(3)
        bq, bk, bv = blk.attn.in_proj_bias.chunk(3)
    if drop_cls:
        y = y[:, 1:]
        N = N - 1
    outs = []
    for j in range(h):
        sl = slice(j * d, (j + 1) * d)
        q = y @ Wq[sl].T + bq[sl]
        k = y @ Wk[sl].T + bk[sl]
        v = y @ Wv[sl].T + bv[sl]
        if with_rope:
            cos, sin = _official_eva_rope(*bb._hw, d)

            def rot(z):
                z2 = torch.stack([-z[..., 1::2], z[..., ::2]], -1).reshape(z.shape)
                return z * cos + z2 * sin
            q = torch.cat([q[:, :1], rot(q[:, 1:])], 1)
            k = torch.cat([k[:, :1], rot(k[:, 1:])], 1)
        sm = lambda a_: torch.softmax(scale * a_, dim=-1)  # noqa: E731
        if mode == 'qq':
            A = sm(q @ q.transpose(1, 2))
        elif mode == 'kk':
            A = sm(k @ k.transpose(1, 2))
        elif mode == 'vv':
            A = sm(v @ v.transpose(1, 2))
        elif mode == 'csa':
            A = sm(q @ q.transpose(1, 2)) + sm(k @ k.transpose(1, 2))
        elif mode == 'all':
            A = sm((q @ q.transpose(1, 2) + k @ k.transpose(1, 2) + v @ v.transpose(1, 2)) / 3)
        outs.append(A @ v)
    o = torch.cat(outs, dim=-1)
    if bb.family == 'eva':
        o = blk.attn.proj(blk.attn.norm(o))
    else:
        o = blk.ls_1(blk.attn.out_proj(o))
    patches = o if drop_cls else o[:, 1:]
    return t.head(patches)  # (B, N, D)


def _last_block_input(bb, x):
    xt, hw, aux = bb._tower.embed(x)
    bb._hw = hw
    for i in range(bb.num_blocks - 1):
        xt = bb._tower.run_block(i, xt, aux)
    return xt


@pytest.mark.parametrize('family', ['eva', 'openai'])
@pytest.mark.parametrize('attn_scale', ['none', 'sqrt'])
@pytest.mark.parametrize('mode', DECOUPLED_MODES)
def test_decoupled_modes_match_formula(family, attn_scale, mode):
    bb = _tiny(family, dense_mode=mode, attn_scale=attn_scale, out_types=('dense', ))
    x = torch.randn(2, 3, 64, 96)
    scale = 1.0 if attn_scale == 'none' else (bb.width // bb.num_heads) ** -0.5
    with torch.no_grad():
        got = bb(x)[0].flatten(2).transpose(1, 2)
        xin = _last_block_input(bb, x)
        want = _reference_last_block(bb, xin, mode, scale)
    assert got.shape == (2, 4 * 6, 32)
    assert (got - want).abs().max() < 1e-4
    if family == 'eva':  # the implementation neither adds RoPE nor drops CLS before the attention
        with torch.no_grad():
            with_rope = _reference_last_block(bb, xin, mode, scale, with_rope=True)
            no_cls = _reference_last_block(bb, xin, mode, scale, drop_cls=True)
        if mode != 'vv':  # RoPE acts on q and k only: vv cannot tell
            assert (got - with_rope).abs().max() > 1e-3
        assert (got - no_cls).abs().max() > 1e-4


@pytest.mark.parametrize('family', ['eva', 'openai'])
def test_maskclip_modes_match_formula(family):
    bb = _tiny(family, out_indices=(3, ), last_feat_mode='maskclip', dense_mode='maskclip_cls',
               out_types=('feats', 'dense'))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feat, dense = bb(x)
        xin = _last_block_input(bb, x)
        t, blk = bb._tower, bb._tower.blocks[-1]
        if family == 'eva':
            v = blk.attn.v_proj(blk.norm1(xin))
            y = xin + blk.attn.proj(blk.attn.norm(v))
            y = y + blk.mlp(blk.norm2(y))
            yc = xin[:, :1] + blk.attn.proj(blk.attn.norm(v))
            yc = yc + blk.mlp(blk.norm2(yc))
        else:
            v = F.linear(blk.ln_1(xin), blk.attn.in_proj_weight.chunk(3)[2], blk.attn.in_proj_bias.chunk(3)[2])
            y = xin + blk.attn.out_proj(v)
            y = y + blk.mlp(blk.ln_2(y))
            yc = xin[:, :1] + blk.attn.out_proj(v)
            yc = yc + blk.mlp(blk.ln_2(yc))
    assert (feat.flatten(2).transpose(1, 2) - y[:, 1:]).abs().max() < 1e-4
    assert (dense.flatten(2).transpose(1, 2) - t.head(yc[:, 1:])).abs().max() < 1e-4


def test_csa_scaling_eva_inner_ln_cancels_factor_two_openai_does_not():
    """csa is a SUM of the two attentions (rows total 2): EVA's inner LN cancels the factor 2, OpenAI's out_proj
    (with bias, no LN before it) does not."""
    from declip_mm.models.backbones import decoupled_attention
    for family in ('eva', 'openai'):
        bb = _tiny(family)
        x = torch.randn(1, 3, 48, 48)
        with torch.no_grad():
            xin = _last_block_input(bb, x)
            q, k, v = bb._tower.qkv(bb._tower.blocks[-1], xin)
            s = bb.attn_scale
            want = (torch.softmax(s * q @ q.transpose(-1, -2), -1) @ v
                    + torch.softmax(s * k @ k.transpose(-1, -2), -1) @ v)  # (B, h, N, d)
            o = decoupled_attention(q, k, v, 'csa', s)
            cat = lambda o: o.transpose(1, 2).reshape(1, o.shape[2], -1)  # noqa: E731
            blk = bb._tower.blocks[-1]
            a, b = bb._tower.decoupled_out(blk, cat(o)), bb._tower.decoupled_out(blk, cat(want / 2))
        assert (o - want).abs().max() < 1e-5  # a sum ...
        assert (o - want / 2).abs().max() > 1e-2  # ... not a mean
        if family == 'eva':
            assert (a - b).abs().max() < 1e-3  # LayerNorm is scale invariant up to eps
        else:
            assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize('family', ['eva', 'openai'])
def test_context_channels_are_per_head_q_without_cls(family):
    bb = _tiny(family, dense_mode='csa', out_types=('context', ))
    x = torch.randn(3, 3, 64, 80)
    with torch.no_grad():
        (ctx_q, ctx_k), = bb(x)
        xin = _last_block_input(bb, x)
        blk = bb._tower.blocks[-1]
        if family == 'eva':
            y = blk.norm1(xin)
            q_full = blk.attn.q_proj(y)
            k_full = blk.attn.k_proj(y)
        else:
            y = blk.ln_1(xin)
            Wq, Wk, _ = blk.attn.in_proj_weight.chunk(3)
            bq, bk, _ = blk.attn.in_proj_bias.chunk(3)
            q_full, k_full = y @ Wq.T + bq, y @ Wk.T + bk
    d = bb.width // bb.num_heads
    assert ctx_q.shape == (3, bb.width, 4, 5)
    for j in range(bb.num_heads):
        head_q = q_full[:, 1:, j * d:(j + 1) * d]  # (B, N, d) CLS removed
        assert torch.allclose(ctx_q[:, j * d:(j + 1) * d].flatten(2).transpose(1, 2), head_q, atol=1e-5)
    assert torch.allclose(ctx_k.flatten(2).transpose(1, 2), k_full[:, 1:], atol=1e-5)
    qq = _tiny(family, dense_mode='qq', out_types=('context', ))
    assert len(qq(x)[0]) == 1


def test_pos_embed_unchanged_at_native_size_and_resized_elsewhere():
    from declip_mm.models.backbones.towers import resize_pos_embed
    pos = torch.randn(1 + 14 * 14, 8)
    assert resize_pos_embed(pos, (14, 14), (14, 14)) is pos
    r = resize_pos_embed(pos, (14, 14), (10, 40))
    assert r.shape == (1 + 10 * 40, 8) and torch.equal(r[0], pos[0])
    grid = pos[1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(10, 40), mode='bicubic', align_corners=False)
    assert torch.allclose(r[1:], ref.permute(0, 2, 3, 1).reshape(-1, 8), atol=1e-6)


@pytest.mark.parametrize('family', ['eva', 'openai'])
def test_default_pos_embed_resize_is_plain_bicubic(family):
    """The default DeCLIPViT (no pos_embed_antialias argument) at a non-native, non-square grid (10 x 18 against
    the native 14 x 14: one axis shrinks, where antialiasing would matter) adds the official EVA-CLIP / CLIPSelf
    resize: bicubic, align_corners=False, no antialias, CLS entry kept."""
    bb = _tiny(family)
    with torch.no_grad():  # position embeddings of unit scale, so that the resize dominates the tokens
        (bb.visual.trunk.pos_embed if family == 'eva' else bb.visual.positional_embedding).normal_()
    x = torch.randn(1, 3, 160, 288)
    if family == 'eva':
        t = bb.visual.trunk
        pos, conv, norm, cls = t.pos_embed[0], t.patch_embed.proj, t.patch_embed.norm, t.cls_token[0]
        pre = t.norm_pre
    else:
        v = bb.visual
        pos, conv, norm, cls = v.positional_embedding, v.conv1, torch.nn.Identity(), v.class_embedding[None]
        pre = v.ln_pre
    with torch.no_grad():
        got = bb._tower.embed(x)[0]
        patches = norm(conv(x).flatten(2).transpose(1, 2))[0]  # (180, C)
        C = pos.shape[-1]
        grid = pos[1:].reshape(1, 14, 14, C).permute(0, 3, 1, 2)
        plain = F.interpolate(grid, size=(10, 18), mode='bicubic', align_corners=False)[0].flatten(1).T
        aa = F.interpolate(grid, size=(10, 18), mode='bicubic', align_corners=False, antialias=True)[0].flatten(1).T
        want = pre(torch.cat([cls + pos[:1], patches + plain])[None])
        want_aa = pre(torch.cat([cls + pos[:1], patches + aa])[None])
    assert (got - want).abs().max() < 1e-5
    assert (got - want_aa).abs().max() > 1e-3  # the test can tell the two resizes apart


# ----------------------------------------------------------------------------- freezing
def _step(bb, x):
    opt = torch.optim.SGD([p for p in bb.parameters() if p.requires_grad], lr=0.1)
    before = {n: p.detach().clone() for n, p in bb.named_parameters()}
    out = bb.extract(x, ('dense', 'cls'))
    (out['dense'].square().mean() + out['cls'].square().mean()).backward()
    opt.step()
    return {n: not torch.equal(before[n], p) for n, p in bb.named_parameters()}


def test_freezing_rules():
    x = torch.randn(2, 3, 32, 32)
    bb = _tiny('eva', trainable=1, dense_mode='qq')
    changed = _step(bb.train(), x)
    last = set(bb.block_param_names(3))
    assert any(changed[n] for n in last)
    assert not any(changed[n] for n in changed if n not in last)
    # fnmatch rule: CAT-Seg-style q/v only (openai split_qkv)
    bb = _tiny('openai', trainable=['*attn.q_proj_weight', '*attn.v_proj_weight'], split_qkv=True,
               dense_mode='csa')
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert len(trainable) == 2 * 4 and all(n.endswith(('q_proj_weight', 'v_proj_weight')) for n in trainable)
    changed = _step(bb.train(), x)
    assert not any(changed[n] for n in changed if n not in trainable)
    assert all(changed[n] for n in trainable)
    # fully frozen: eval through train(), no grads anywhere
    bb = _tiny('eva', frozen=True)
    bb.train()
    assert not bb.training and not any(p.requires_grad for p in bb.parameters())
    assert not bb.extract(x, ('dense', ))['dense'].requires_grad
    # frozen_patterns after trainable: the official distillation freezes the last block's FFN
    bb = _tiny('eva', trainable='all', frozen_patterns=['*blocks.3.mlp.*', '*blocks.3.norm2.*'])
    ffn = set(bb.block_param_names(3, 'ffn'))
    assert ffn and all(not p.requires_grad for n, p in bb.named_parameters() if n in ffn)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match='dense_mode'):
        DeCLIPViT('EVA02-B-16', model_overrides=tiny_clip_overrides('eva'), dense_mode='qk')
    with pytest.raises(ValueError, match='match no parameter'):
        DeCLIPViT('EVA02-B-16', model_overrides=tiny_clip_overrides('eva'), trainable=['*nothing*'])
    with pytest.raises(ValueError, match='Unknown open_clip model'):
        DeCLIPViT('ViT-Q-99')
    assert math.isclose(_tiny('openai').attn_scale, 16 ** -0.5) and _tiny('eva').attn_scale == 1.0


def test_activation_checkpointing_gives_identical_gradients():
    x = torch.randn(2, 3, 32, 48)
    grads = []
    for with_cp in (False, True):
        bb = _tiny('eva', dense_mode='csa', with_cp=with_cp).train()
        out = bb.extract(x, ('dense', 'cls'))
        (out['dense'].square().mean() + out['cls'].square().mean()).backward()
        grads.append({n: p.grad.clone() for n, p in bb.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-6), n


@pytest.mark.parametrize('mode', DECOUPLED_MODES)
def test_demo_attention_maps_are_the_forward_attention(mode):
    from declip_mm.models.backbones import decoupled_attention
    from declip_mm.models.backbones.attention_maps import anchor_attention, attention_weights
    bb = _tiny('eva', dense_mode=mode)
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        q, k, v = bb._tower.qkv(bb._tower.blocks[-1], _last_block_input(bb, x))
        A = attention_weights(q, k, v, mode, bb.attn_scale)
        assert torch.allclose(A @ v, decoupled_attention(q, k, v, mode, bb.attn_scale), atol=1e-5)
        maps = anchor_attention(bb, x, mode, [(1, 2), (2, 0)])
    assert maps.shape == (2, 3, 4)
    ref = A.mean(dim=1)[0, [1 + 1 * 4 + 2, 1 + 2 * 4 + 0], 1:] / (2 if mode == 'csa' else 1)
    assert torch.allclose(maps.flatten(1), ref, atol=1e-6)
