"""DeCLIP ``epoch_k.pt`` out (declip_mm_to_declip.py) and in (declip_to_declip_mm.py); EVA-CLIP release naming.

Synthetic checkpoints use the original layouts (EVA-CLIP release / OpenAI names, key lists from the original
model code, see ``reference.py``); outputs are compared with plain re-implementations of the original forwards.
"""
import pytest
import torch

from declip_mm.models.backbones import DeCLIPViT, tiny_clip_overrides
from declip_mm.models.backbones.checkpoint import (CheckpointError, eva_release_name, eva_timm_name,
                                                   export_backbone)

from .conftest import converter
from .reference import (eva_clip_visual, eva_clip_visual_layout, eva_rope_tables, openai_visual,
                        openai_visual_layout, randomize, text_layout)

WIDTH, DEPTH, HEADS, EMBED, GRID = 64, 4, 4, 32, 14  # tiny_clip_overrides('eva'); native 224 / 16 = 14


def eva_release_clip(seed=0):
    """A full EVA02-CLIP release / DeCLIP ``epoch_k.pt`` state dict (visual + ``text.*`` + logit_scale)."""
    p = randomize(eva_clip_visual_layout(WIDTH, DEPTH, EMBED, GRID, head_dim=WIDTH // HEADS), seed=seed)
    cos, sin = eva_rope_tables(GRID, WIDTH // HEADS)
    for k in list(p):
        if k.endswith('rope.freqs_cos'):
            p[k] = cos.clone()
        elif k.endswith('rope.freqs_sin'):
            p[k] = sin.clone()
    p.update(randomize(text_layout(32, 2, EMBED, prefix='text.'), seed=seed + 1))
    p['logit_scale'] = torch.tensor(4.6052)
    return p


@pytest.fixture
def eva_file(tmp_path):
    sd = eva_release_clip()
    path = str(tmp_path / 'epoch_6.pt')
    torch.save({'epoch': 6, 'name': 'declip', 'state_dict': sd}, path)
    return path, sd


def test_eva_names_match_timm_filter():
    """Our per-key EVA-CLIP -> timm renaming equals timm's own ``eva.checkpoint_filter_fn`` (library reference),
    and ``eva_release_name`` inverts it."""
    from timm.models.eva import checkpoint_filter_fn
    from declip_mm.models.backbones.clip_builder import build_clip_model
    p = eva_release_clip()
    visual = {k: v for k, v in p.items() if k.startswith('visual.')}
    trunk = build_clip_model('EVA02-B-16', tiny_clip_overrides('eva'), with_text=False).visual.trunk
    ref = {'visual.trunk.' + k: v for k, v in checkpoint_filter_fn(visual, trunk).items()}
    ours = {eva_timm_name(k): v for k, v in visual.items() if eva_timm_name(k) is not None}
    assert set(ours) == set(ref)
    assert all(ours[k] is ref[k] for k in ref)
    assert all(eva_release_name(eva_timm_name(k)) == k for k in visual if 'rope' not in k)
    with pytest.raises(CheckpointError, match='visual.blocks.0.attn.qkv.weight'):
        eva_timm_name('visual.blocks.0.attn.qkv.weight')


def test_declipvit_on_release_weights_computes_eva_clip(eva_file):
    """A DeCLIP epoch file loads directly and DeCLIPViT computes what EVA-CLIP / CLIPSelf compute on it: the
    image embedding, block taps, and the F-ViT dense map (last block without attention) at a new grid."""
    path, sd = eva_file
    bb = DeCLIPViT('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=path, out_indices=(1, 3),
                   last_feat_mode='maskclip', dense_mode='maskclip').eval()
    img = torch.randn(2, 3, 64, 80)[..., :64]  # 4 x 4 grid (pos-embed resize and RoPE for the new grid)
    with torch.no_grad():
        out = bb.extract(img, ('feats', 'dense', 'cls'))
    ref = eva_clip_visual(sd, img, HEADS, taps=(1, ), last='maskclip')
    ref_cls = eva_clip_visual(sd, img, HEADS)['cls']
    torch.testing.assert_close(out['cls'], ref_cls, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out['feats'][0], ref['taps'][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out['feats'][1], ref['tokens'][:, 1:].transpose(1, 2).reshape(2, WIDTH, 4, 4),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out['dense'], ref['dense'], rtol=1e-4, atol=1e-5)


def test_export_is_original_layout_and_round_trips(eva_file, tmp_path):
    """ours -> DeCLIP epoch file reproduces the original tensors key for key (RoPE buffers from EVA-CLIP's
    formula), keeps the text tower, and -> ours again is the identity."""
    out_mod, in_mod = converter('declip_mm_to_declip'), converter('declip_to_declip_mm')
    path, clip_sd = eva_file
    bb = DeCLIPViT('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=path, dense_mode='csa')
    export = export_backbone(bb, str(tmp_path / 'backbone_epoch_1.pth'))
    obj = torch.load(export, weights_only=True)
    ckpt, reports = out_mod.export_declip(out_mod.backbone_state_dict(obj), clip_sd)
    sd = ckpt['state_dict']
    assert list(sd) == list(clip_sd) and 'epoch' not in ckpt and 'optimizer' not in ckpt
    for k, v in clip_sd.items():
        torch.testing.assert_close(sd[k], v, rtol=0, atol=0, msg=k)
    assert not reports[0].missing and 'visual.rope.freqs_cos' in reports[0].added
    # back in: identity on our weights and meta
    back, report = in_mod.import_declip(sd, 'EVA02-B-16', 'csa', tiny_clip_overrides('eva'))
    assert set(back['state_dict']) == set(obj['state_dict'])
    for k, v in obj['state_dict'].items():
        assert torch.equal(back['state_dict'][k], v), k
    assert back['meta']['declip_mm'] == {k: obj['meta']['declip_mm'][k] for k in back['meta']['declip_mm']}
    assert all(r.startswith('text tower') or r.startswith('RoPE') for r in report.dropped.values())


def test_export_from_model_checkpoint_prefix_and_errors(eva_file):
    out_mod = converter('declip_mm_to_declip')
    from _common import ConversionError
    path, clip_sd = eva_file
    bb = DeCLIPViT('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=path)
    run_ckpt = {'state_dict': {'backbone.' + k: v for k, v in bb.state_dict().items()}, 'meta': {}}
    with pytest.raises(ConversionError, match='--prefix'):
        out_mod.backbone_state_dict(run_ckpt)
    visual = out_mod.backbone_state_dict(run_ckpt, 'backbone.')
    bad = dict(clip_sd)
    bad['visual.blocks.0.attn.proj.weight'] = torch.zeros(8, 8)  # a CLIP file of another width
    with pytest.raises(ConversionError, match='visual.blocks.0.attn.proj.weight'):
        out_mod.export_declip(visual, bad)
    visual['visual.trunk.extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match='visual.trunk.extra.weight'):
        out_mod.export_declip(visual, clip_sd)


def test_openai_export_packs_qkv(tmp_path):
    """OpenAI-style towers (split q/k/v for q/v-only training) export with OpenAI's packed in_proj_weight and
    compute what OpenAI CLIP computes."""
    out_mod = converter('declip_mm_to_declip')
    p = randomize(openai_visual_layout(64, 4, 32, 14), seed=5)
    p.update(randomize(text_layout(32, 2, 32), seed=6))
    p['logit_scale'] = torch.tensor(4.6)
    path = str(tmp_path / 'openai.pt')
    torch.save(p, path)
    bb = DeCLIPViT('ViT-B-16', tiny_clip_overrides('openai'), checkpoint=path, split_qkv=True).eval()
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bb.encode_image(img), openai_visual(p, img, 4)['cls'], rtol=1e-4, atol=1e-5)
    ckpt, _ = out_mod.export_declip({k: v for k, v in bb.state_dict().items()}, p)
    for k, v in p.items():
        torch.testing.assert_close(ckpt['state_dict'][k], v, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize('grid,head_dim', [(14, 64), (24, 64)])  # B/16 @224, L/14 @336
def test_rope_buffers_bit_identical_to_eva_clip(grid, head_dim):
    from declip_mm.models.backbones.checkpoint import eva_release_rope_buffers
    cos, sin = eva_rope_tables(grid, head_dim)
    buf = eva_release_rope_buffers(grid, head_dim, depth=2)
    assert len(buf) == 2 + 2 * 2
    assert torch.equal(buf['visual.rope.freqs_cos'], cos) and torch.equal(buf['visual.blocks.1.attn.rope.freqs_sin'], sin)
