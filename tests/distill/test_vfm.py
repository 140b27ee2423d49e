"""VFM teachers built from timm architectures with tiny widths; local checkpoints only."""
import numpy as np
import pytest
import torch

from declip_mm.models.vfm import VFM_SPECS, VFMTeacher

TINY = dict(embed_dim=64, depth=2, num_heads=4)


def test_dinov2_drops_cls_and_registers_and_applies_norm():
    torch.manual_seed(0)
    m = VFMTeacher('dinov2_b', model_kwargs=dict(TINY, img_size=56))
    assert m.patch_size == 14 and m.num_prefix_tokens == 5
    x = torch.randn(2, 3, 70, 42)
    out = m(x)
    assert out.shape == (2, 64, 5, 3)
    tok = m.model.forward_features(x)  # includes the final norm
    assert torch.allclose(out.flatten(2).transpose(1, 2), tok[:, 5:], atol=1e-6)
    # the final norm is applied: per-token mean ~ beta (0 at init), std ~ 1
    assert out.mean(1).abs().max() < 1e-4
    assert all(not p.requires_grad for p in m.parameters())
    m.train()
    assert not m.training


@pytest.mark.parametrize('name,patch,prefix', [('dino_b16', 16, 1), ('dino_b8', 8, 1), ('dinov3_b', 16, 5)])
def test_other_vits(name, patch, prefix):
    kw = dict(TINY)
    if not name.startswith('dinov3'):
        kw['img_size'] = 64
    m = VFMTeacher(name, model_kwargs=kw)
    assert m.patch_size == patch and m.num_prefix_tokens == prefix
    out = m(torch.randn(1, 3, 4 * patch, 3 * patch))
    assert out.shape == (1, 64, 4, 3)


def test_sam_neck_output():
    m = VFMTeacher('sam_b', model_kwargs=dict(embed_dim=64, depth=2, num_heads=4, img_size=128,
                                              global_attn_indexes=[1], window_size=4))
    out = m(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 256, 4, 4)


def test_every_variant_declares_its_settings():
    for name, spec in VFM_SPECS.items():
        assert spec['patch'] in (8, 14, 16) and spec['features']
    assert set(VFM_SPECS) >= {'dinov2_s', 'dinov2_b', 'dinov2_l', 'dinov2_g', 'dino_b16', 'dino_b8', 'sam_b',
                              'sam_l', 'dinov3_b'}


def test_checkpoint_roundtrip_and_errors(tmp_path):
    torch.manual_seed(0)
    a = VFMTeacher('dinov2_s', model_kwargs=dict(TINY, img_size=56))
    path = str(tmp_path / 'vfm.pth')
    torch.save(a.model.state_dict(), path)
    b = VFMTeacher('dinov2_s', checkpoint=path, model_kwargs=dict(TINY, img_size=56))
    x = torch.randn(1, 3, 56, 56)
    assert torch.equal(a(x), b(x))
    # the original DINOv2 hub layout (register_tokens, mask_token) goes through timm's filter
    sd = {k: v for k, v in a.model.state_dict().items()}
    sd['register_tokens'] = sd.pop('reg_token')
    sd['mask_token'] = torch.zeros(1, 64)
    # hub layout: the CLS position is part of pos_embed (timm folds it into cls_token)
    cls_pos = torch.randn(1, 1, 64)
    sd['pos_embed'] = torch.cat([cls_pos, sd['pos_embed']], dim=1)
    sd['cls_token'] = sd['cls_token'] - cls_pos
    torch.save(sd, path)
    c = VFMTeacher('dinov2_s', checkpoint=path, model_kwargs=dict(TINY, img_size=56))
    assert torch.allclose(a(x), c(x), atol=1e-6)
    with pytest.raises(FileNotFoundError, match='not found'):
        VFMTeacher('dinov2_s', checkpoint=str(tmp_path / 'missing.pth'), model_kwargs=dict(TINY, img_size=56))
    with pytest.raises(ValueError, match='does not match'):
        VFMTeacher('dinov2_s', checkpoint=path, model_kwargs=dict(embed_dim=32, depth=2, num_heads=4, img_size=56))
    with pytest.raises(KeyError, match='unknown VFM'):
        VFMTeacher('dinov5')
    with pytest.raises(ValueError, match='multiple of the patch'):
        a(torch.randn(1, 3, 50, 56))


# --------------------------------------------------------------------------- item 6: the originals' pos-embed resize
def _cubic(t, a=-0.75):
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def _bicubic_matrix(n_in, n_out, ratio):
    """(n_out, n_in) weights of torch's bicubic (a=-0.75, align_corners=False, border clamped, no antialias);
    output i samples input coordinate ``ratio * (i + 0.5) - 0.5``."""
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = ratio * (i + 0.5) - 0.5
        f = np.floor(src)
        for k in (-1, 0, 1, 2):
            w[i, int(np.clip(f + k, 0, n_in - 1))] += _cubic(src - (f + k))
    return w


def _resize_grid(grid, out_hw, ratio_hw):
    """(H, W, C) numpy -> (h, w, C) with separable bicubic weights."""
    mh = _bicubic_matrix(grid.shape[0], out_hw[0], ratio_hw[0])
    mw = _bicubic_matrix(grid.shape[1], out_hw[1], ratio_hw[1])
    return np.einsum('ih,jw,hwc->ijc', mh, mw, grid)


def test_sam_pos_embed_plain_bicubic():
    """SAM (original code): F.interpolate(size=(h, w), bicubic) without antialias: sample at (i + .5) * H0/h - .5."""
    from declip_mm.models.vfm.vfm_teacher import sam_pos_embed
    torch.manual_seed(0)
    pe = torch.randn(1, 8, 8, 6)
    assert sam_pos_embed(pe, (8, 8)) is pe
    for hw in [(5, 5), (13, 11)]:
        ref = _resize_grid(pe[0].double().numpy(), hw, (8 / hw[0], 8 / hw[1]))
        assert np.abs(sam_pos_embed(pe, hw)[0].double().numpy() - ref).max() < 1e-5, hw


def test_dino_v1_pos_embed_scale_factor_form():
    """DINO v1 (interpolate_pos_encoding of the DINO repo): scale_factor (n + 0.1)/sqrt(N), so output i samples
    input coordinate (i + .5) * sqrt(N) / (n + 0.1) - .5; the CLS entry is kept; unchanged at the square N grid."""
    from declip_mm.models.vfm.vfm_teacher import dino_v1_pos_embed
    torch.manual_seed(0)
    pe = torch.randn(1, 1 + 36, 5)
    assert dino_v1_pos_embed(pe, (6, 6)) is pe
    for hw in [(9, 9), (4, 7), (35, 35)]:
        out = dino_v1_pos_embed(pe, hw)
        assert out.shape == (1, 1 + hw[0] * hw[1], 5)
        assert torch.equal(out[:, 0], pe[:, 0])
        grid = pe[0, 1:].reshape(6, 6, 5).double().numpy()
        ref = _resize_grid(grid, hw, (6 / (hw[0] + 0.1), 6 / (hw[1] + 0.1)))
        assert np.abs(out[0, 1:].double().numpy() - ref.reshape(-1, 5)).max() < 1e-5, hw


def _with_pos(model, pos, grid):
    """A copy of the timm model whose own position table is ``pos`` at ``grid`` (timm then uses it unchanged)."""
    import copy
    m = copy.deepcopy(model)
    m.pos_embed.data = pos.clone()
    if hasattr(m.patch_embed, 'grid_size'):
        m.patch_embed.grid_size = grid
    return m


def test_sam_and_dino_v1_teachers_use_the_original_resize():
    """End to end at a non-native grid: the teacher equals timm's own forward run with the reference-resized
    table (and differs from timm's antialiased resize); at the native grid it equals timm's forward."""
    torch.manual_seed(0)
    sam = VFMTeacher('sam_b', model_kwargs=dict(embed_dim=64, depth=2, num_heads=4, img_size=128,
                                               global_attn_indexes=[1], window_size=4))
    sam.model.pos_embed.data.normal_()  # timm initialises it to zeros
    x = torch.randn(1, 3, 80, 80)  # 5 x 5 tokens; native 8 x 8
    pe = sam.model.pos_embed.detach()
    ref_pos = torch.from_numpy(_resize_grid(pe[0].double().numpy(), (5, 5), (8 / 5, 8 / 5))).float()[None]
    ref = _with_pos(sam.model, ref_pos, (5, 5)).forward_features(x)
    out = sam(x)
    assert torch.allclose(out, ref, atol=1e-4)
    assert (out - sam.model.forward_features(x)).abs().max() > 1e-3  # timm's antialiased default differs
    xn = torch.randn(1, 3, 128, 128)
    assert torch.allclose(sam(xn), sam.model.forward_features(xn), atol=1e-5)

    dino = VFMTeacher('dino_b16', model_kwargs=dict(TINY, img_size=64))  # native 4 x 4
    dino.model.pos_embed.data.normal_()
    x = torch.randn(2, 3, 96, 96)  # 6 x 6 tokens
    pe = dino.model.pos_embed.detach()
    grid = pe[0, 1:].reshape(4, 4, 64).double().numpy()
    patch = torch.from_numpy(_resize_grid(grid, (6, 6), (4 / 6.1, 4 / 6.1))).float().reshape(1, 36, 64)
    ref_model = _with_pos(dino.model, torch.cat([pe[:, :1], patch], 1), (6, 6))
    ref = ref_model.forward_features(x)[:, 1:].transpose(1, 2).reshape(2, 64, 6, 6)
    out = dino(x)
    assert torch.allclose(out, ref, atol=1e-4)
    timm_out = dino.model.forward_features(x)[:, 1:].transpose(1, 2).reshape(2, 64, 6, 6)
    assert (out - timm_out).abs().max() > 1e-3
    xn = torch.randn(1, 3, 64, 64)
    assert torch.allclose(dino(xn), dino.model.forward_features(xn)[:, 1:].transpose(1, 2).reshape(1, 64, 4, 4),
                          atol=1e-5)
