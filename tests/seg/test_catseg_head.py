"""CATSegHead: cost volume, top-k / padding, aggregation quirks, decoder shapes, batch independence."""
import math

import pytest
import torch
import torch.nn.functional as F

from declip_mm.models.decode_heads.catseg_head import (CATSegHead, ClassAggregation, catseg_cost_volume,
                                                        catseg_select_classes)


def tiny_head(pad_len=8, **kw):
    cfg = dict(text_dim=16, guidance_in_channels=24, appearance_guidance_proj_dim=16, text_guidance_proj_dim=16,
               decoder_dims=(32, 16), decoder_guidance_dims=(32, 16), decoder_guidance_proj_dims=(8, 4),
               hidden_dim=32, num_heads=4, feature_resolution=(8, 8), window_size=4, pad_len=pad_len)
    cfg.update(kw)
    head = CATSegHead(**cfg)
    with torch.no_grad():  # zero-initialised padding tokens would hide padding bugs
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return head


def inputs(B=2, T=5, D=16, C=24, hw=8):
    return torch.randn(B, D, hw, hw), torch.randn(T, 1, D), [torch.randn(B, C, hw, hw), torch.randn(B, C, hw, hw)]


def test_cost_volume_equals_hand_cosines():
    img = torch.tensor([[[[3.0]], [[4.0]]]])  # (1, 2, 1, 1): unit vector (0.6, 0.8)
    text = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]], [[-3.0, -4.0]]]])  # (1, T=3, P=1, 2)
    corr = catseg_cost_volume(img, text)
    assert corr.shape == (1, 1, 3, 1, 1)
    assert torch.allclose(corr.flatten(), torch.tensor([0.6, 0.8, -1.0]))
    # no temperature: values are plain cosines within [-1, 1] for random input too
    img, text, _ = inputs()
    c = catseg_cost_volume(img, text[None].expand(2, -1, -1, -1))
    ref = torch.einsum('bchw,tc->bthw', F.normalize(img, dim=1), F.normalize(text[:, 0], dim=-1))
    assert torch.allclose(c[:, 0], ref, atol=1e-6)


def test_select_classes_is_per_image_topk_of_max_over_pixels():
    corr = torch.zeros(2, 1, 5, 2, 2)
    corr[0, 0, 3, 1, 1] = 0.9   # image 0: classes 3, 1 strongest (max over pixels)
    corr[0, 0, 1, 0, 0] = 0.5
    corr[0, 0, 4] = 0.2
    corr[1, 0, 0, 0, 1] = 0.7   # image 1: classes 0, 2
    corr[1, 0, 2] = 0.3
    sel = catseg_select_classes(corr, 2)
    assert sel[0].tolist() == [3, 1]
    assert sel[1].tolist() == [0, 2]


def test_shapes_and_padding_below_pad_len():
    head = tiny_head(pad_len=8).eval()
    dense, text, taps = inputs(T=3)
    out = head(dense, text, taps)
    assert out.shape == (2, 3, 32, 32)  # 4x the CLIP grid
    assert torch.isfinite(out).all()
    # the learnable padding tokens take part in class attention (unmasked): changing them changes the output
    with torch.no_grad():
        head.layers[0].attention.padding_tokens.add_(1.0)
    assert not torch.allclose(head(dense, text, taps), out)


def test_topk_above_pad_len_scatters_minus_100():
    head = tiny_head(pad_len=4).eval()
    dense, text, taps = inputs(T=7)
    out = head(dense, text, taps)
    assert out.shape == (2, 7, 32, 32)
    kept = (out != -100).flatten(2).any(-1)
    assert kept.sum(1).tolist() == [4, 4]  # exactly pad_len classes per image
    # the kept ones are each image's top-4 by max cosine over pixels
    corr = catseg_cost_volume(dense, text[None].expand(2, -1, -1, -1))
    score = corr[:, 0].flatten(2).max(-1)[0]
    for b in range(2):
        assert set(kept[b].nonzero().flatten().tolist()) == set(score[b].topk(4).indices.tolist())
    # and equal the logits obtained by giving the head only those classes
    sel = score[0].topk(4).indices
    alone = head(dense[:1], text[sel], [t[:1] for t in taps])
    assert torch.allclose(out[0, sel], alone[0], atol=1e-5)


@pytest.mark.parametrize('mode', ['eval', 'train'])
@pytest.mark.parametrize('T', [5, 11])
def test_batch_independence(mode, T):
    """Logits of image a from batch [a, b] equal those of [a] alone (catches mmseg's T-major guidance tiling)."""
    head = tiny_head(pad_len=8)
    getattr(head, mode)()
    dense, text, taps = inputs(B=3, T=T)
    both = head(dense, text, taps)
    for i in range(3):
        alone = head(dense[i:i + 1], text, [t[i:i + 1] for t in taps])
        assert torch.allclose(both[i], alone[0], atol=1e-5), (mode, T, i)


def test_class_aggregation_residual_doubles_x_with_unit_pooling():
    """Official quirk: x + up(x_pool + update); with 1x1 pooling and a zero update the output is exactly 2x."""
    layer = ClassAggregation(dim=8, guidance_dim=4, num_heads=2, pad_len=6)
    with torch.no_grad():
        layer.attention.v.weight.zero_()
        layer.attention.v.bias.zero_()
        layer.MLP[2].weight.zero_()
        layer.MLP[2].bias.zero_()
    x = torch.randn(2, 8, 3, 4, 4)
    g = torch.randn(2, 3, 4)
    assert torch.allclose(layer(x, g, (1, 1)), 2 * x, atol=1e-6)
    # 2x2 pooling (training): x + bilinear(align_corners=True) upsampling of the pooled map
    pooled = F.avg_pool2d(x.permute(0, 2, 1, 3, 4).reshape(6, 8, 4, 4), 2)
    up = F.interpolate(pooled, size=(4, 4), mode='bilinear', align_corners=True).view(2, 3, 8, 4, 4)
    assert torch.allclose(layer(x, g, (2, 2)), x + up.permute(0, 2, 1, 3, 4), atol=1e-6)


def test_test_time_pooling_differs_from_training_pooling():
    head = tiny_head()
    dense, text, taps = inputs(T=3)
    head.eval()
    a = head(dense, text, taps)
    head.train()
    b = head(dense, text, taps)
    assert not torch.allclose(a, b)


def test_guidance_hook_order_and_wrong_grid_errors():
    head = tiny_head()
    dense, text, taps = inputs(T=3)
    # shallow tap feeds the 2x (48^2-equivalent) stage through the k2 ConvT, the deep tap the 4x one (k4)
    assert head.upsample1.kernel_size == (2, 2) and head.upsample2.kernel_size == (4, 4)
    with pytest.raises(ValueError, match='grid'):
        head(dense[..., :4, :4], text, [t[..., :4, :4] for t in taps])
    with pytest.raises(ValueError, match='taps'):
        head(dense, text, taps[:1])


def test_swin_shift_mask_is_used():
    head = tiny_head()
    blk2 = head.layers[0].swin_block.block_2
    assert blk2.shift_size == 2 and blk2.window_size == 4
    m = blk2.attn_mask
    assert m.shape == (4, 16, 16) and set(m.unique().tolist()) == {0.0, -100.0}
    assert head.layers[0].swin_block.block_1.attn_mask is None
    assert math.isclose(blk2.attn.scale, (32 // 4) ** -0.5)


def test_state_dict_names_follow_the_official_aggregator():
    """Official ``sem_seg_head.predictor.transformer.*`` keys map 1:1 after stripping that prefix."""
    head = CATSegHead()  # B/16 defaults: 512-d text, 768-d taps, hidden 128
    sd = head.state_dict()
    expected = {
        'conv1.weight': (128, 1, 7, 7),
        'guidance_projection.0.weight': (128, 512, 3, 3),
        'text_guidance_projection.0.weight': (128, 512),
        'decoder_guidance_projection.0.0.weight': (32, 256, 3, 3),
        'decoder_guidance_projection.1.0.weight': (16, 128, 3, 3),
        'upsample1.weight': (768, 256, 2, 2),
        'upsample2.weight': (768, 128, 4, 4),
        'layers.1.swin_block.block_1.attn.q.weight': (128, 256),
        'layers.1.swin_block.block_1.attn.v.weight': (128, 128),
        'layers.1.swin_block.block_2.mlp.fc1.weight': (512, 128),
        'layers.1.swin_block.block_2.attn_mask': (4, 144, 144),
        'layers.1.swin_block.guidance_norm.weight': (128, ),
        'layers.1.attention.attention.k.weight': (128, 256),
        'layers.1.attention.MLP.2.weight': (128, 512),
        'layers.1.attention.norm2.weight': (128, ),
        'layers.1.attention.padding_tokens': (1, 1, 128),
        'layers.1.attention.padding_guidance': (1, 1, 128),
        'decoder1.up.weight': (128, 96, 2, 2),
        'decoder1.conv.double_conv.0.weight': (64, 128, 3, 3),
        'decoder1.conv.double_conv.1.weight': (64, ),
        'decoder2.up.weight': (64, 48, 2, 2),
        'decoder2.conv.double_conv.3.weight': (32, 32, 3, 3),
        'head.weight': (1, 32, 3, 3),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert 'layers.0.swin_block.block_1.attn_mask' not in sd  # shift 0: no mask (as officially)
    assert head.decoder1.conv.double_conv[1].num_groups == 4 and head.decoder2.conv.double_conv[1].num_groups == 2
    assert len(head.layers) == 2


# ------------------------------------------------------------------------------------------------------------------
# tests that fail on one-line mutations of the head (each names the mutation it catches)
# ------------------------------------------------------------------------------------------------------------------
def test_shallow_tap_feeds_the_first_decoder_stage_and_deep_tap_the_second():
    """Official: res4 = upsample1(block 4 output) -> decoder1, res5 = upsample2(block 8 output) -> decoder2.

    With upsample2 silenced the deep tap cannot matter any more; catches ``block_feats[::-1]``.
    """
    head = tiny_head().eval()
    dense, text, taps = inputs(T=3)
    with torch.no_grad():
        head.upsample2.weight.zero_()
        base = head(dense, text, taps)
        assert torch.equal(head(dense, text, [taps[0], torch.randn_like(taps[1])]), base)
        assert not torch.allclose(head(dense, text, [torch.randn_like(taps[0]), taps[1]]), base)
    # and the other way round: silencing upsample1 leaves only the deep tap in play
    head = tiny_head().eval()
    with torch.no_grad():
        head.upsample1.weight.zero_()
        base = head(dense, text, taps)
        assert torch.equal(head(dense, text, [torch.randn_like(taps[0]), taps[1]]), base)
        assert not torch.allclose(head(dense, text, [taps[0], torch.randn_like(taps[1])]), base)


def test_class_aggregation_pools_2x2_in_training_and_1x1_at_test(monkeypatch):
    """Catches swapping ``train_pooling_size`` / ``test_pooling_size`` (official eval.sh: POOLING_SIZES [1,1])."""
    seen = []
    orig = ClassAggregation.forward

    def spy(self, x, guidance, pool_size):
        seen.append(tuple(pool_size))
        return orig(self, x, guidance, pool_size)

    monkeypatch.setattr(ClassAggregation, 'forward', spy)
    head = CATSegHead(text_dim=16, guidance_in_channels=24, appearance_guidance_proj_dim=16,
                      text_guidance_proj_dim=16, decoder_dims=(32, 16), decoder_guidance_dims=(32, 16),
                      decoder_guidance_proj_dims=(8, 4), hidden_dim=32, num_heads=4, feature_resolution=(8, 8),
                      window_size=4, pad_len=8)  # default pooling sizes
    dense, text, taps = inputs(T=3)
    head.eval()
    with torch.no_grad():
        head(dense, text, taps)
    assert seen == [(1, 1), (1, 1)]
    seen.clear()
    head.train()
    head(dense, text, taps)
    assert seen == [(2, 2), (2, 2)]


def _reference_swin_block(blk, x, guidance):
    """Plain re-implementation of a (shifted) guided Swin block without window partitioning.

    Every token of the cyclically shifted map attends to the tokens of its own window **and** its own shift region
    (Swin's mask; -inf here, -100 in Swin); then reverse shift, residual, MLP.
    """
    H, W = blk.input_resolution
    ws, ss = blk.window_size, blk.shift_size
    N, L, C = x.shape
    a = blk.attn
    h = a.num_heads
    xg = torch.cat([blk.norm1(x).view(N, H, W, C), guidance.view(N, H, W, -1)], dim=-1)
    xg = torch.roll(xg, shifts=(-ss, -ss), dims=(1, 2)).reshape(N, L, -1)
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')
    window = ((ys // ws) * (W // ws) + xs // ws).flatten()

    def region(c, size):
        return 0 if c < size - ws else (1 if c < size - ss else 2)

    reg = torch.tensor([[region(i, H) * 3 + region(j, W) for j in range(W)] for i in range(H)]).flatten()
    if ss == 0:
        reg = torch.zeros_like(reg)
    allowed = (window[:, None] == window[None]) & (reg[:, None] == reg[None])
    q = a.q(xg).view(N, L, h, -1).transpose(1, 2) * a.scale
    k = a.k(xg).view(N, L, h, -1).transpose(1, 2)
    v = a.v(xg[..., :C]).view(N, L, h, -1).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)).masked_fill(~allowed, float('-inf')).softmax(-1)
    o = a.proj((att @ v).transpose(1, 2).reshape(N, L, C)).view(N, H, W, C)
    o = torch.roll(o, shifts=(ss, ss), dims=(1, 2)).reshape(N, L, C)
    y = x + o
    return y + blk.mlp(blk.norm2(y))


@pytest.mark.parametrize('which', ['block_1', 'block_2'])
def test_swin_blocks_equal_a_plain_masked_attention(which):
    """Catches passing ``mask=None`` to the shifted-window attention (and window partition/reverse bugs)."""
    head = tiny_head()
    blk = getattr(head.layers[0].swin_block, which)
    assert blk.shift_size == (2 if which == 'block_2' else 0)
    x = torch.randn(3, 64, 32)
    g = torch.randn(3, 64, 16)
    with torch.no_grad():
        assert torch.allclose(blk(x, g), _reference_swin_block(blk, x, g), atol=1e-5)
