"""VFM teachers built from timm architectures with tiny widths; local checkpoints only."""
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
