"""CAT-Seg detectron2 ``model_final.pth`` -> declip_mm CATSeg: synthetic checkpoint in CAT-Seg's layout (head +
VPT CLIP with split q/k/v and packed in_proj_bias), strict load, original forwards re-implemented in reference.py."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from .conftest import REPO, converter
from .reference import (catseg_layout, clip_text, eva_clip_visual, eva_clip_visual_layout, eva_rope_tables,
                        openai_visual, openai_visual_layout, randomize, text_layout)

CM = 'sem_seg_head.predictor.clip_model.'
TINY_OPENAI = dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                   vision_cfg=dict(width=64, layers=4, head_width=16))


def _build(model_cfg):
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    import declip_mm  # noqa: F401
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(model_cfg)


def _tiny_openai_cfg():
    cfg = Config.fromfile(osp.join(REPO, 'configs/catseg/catseg_vitb16-384-release_4xb1-80k_ade150.py'))
    m = cfg.model
    m.backbone.update(model_overrides=TINY_OPENAI, out_indices=(1, 2))
    m.text_encoder.update(model_overrides=TINY_OPENAI)
    m.decode_head.update(text_dim=32, guidance_in_channels=64, feature_resolution=(4, 4), window_size=2)
    m.update(clip_size=64)
    return cfg


def _catseg_openai_tiny(seed=0):
    p = randomize(catseg_layout(32, 64, window=2, grid=4), seed=seed)
    p.update(randomize(openai_visual_layout(64, 4, 32, 14, prefix=CM + 'visual.', split_qkv=True), seed=seed + 1))
    p.update(randomize(text_layout(32, 2, 32, prefix=CM, split_qkv=True), seed=seed + 2))
    p[CM + 'logit_scale'] = torch.tensor(4.6052)
    return p


@pytest.fixture(scope='module')
def converted():
    from _common import shapes_of
    conv = converter('catseg_to_declip_mm')
    p = _catseg_openai_tiny()
    model = _build(_tiny_openai_cfg().model).eval()
    out, report = conv.convert(p, shapes_of(model))
    model.load_state_dict(out, strict=True)
    return conv, p, model, out, report


def test_keys_and_finetuned_qv_land_in_place(converted):
    """Every key mapped (none dropped), the head 1:1, upsample1/2 into the head, and the fine-tuned Q / V
    weights of both towers become exactly the parameters the config trains."""
    conv, p, model, out, report = converted
    assert not report.missing and not report.dropped and set(report.mapped) == set(p)
    for k, v in p.items():
        if k.startswith('sem_seg_head.predictor.transformer.'):
            assert torch.equal(out['decode_head.' + k[len('sem_seg_head.predictor.transformer.'):]], v)
    assert torch.equal(model.decode_head.upsample2.weight, p['upsample2.weight'])
    trained = {n for n, q in model.named_parameters() if q.requires_grad and not n.startswith('decode_head.')}
    src_of = {v: k for k, vs in report.mapped.items() for v in vs}
    assert trained and all(src_of[n].endswith(('attn.q_proj_weight', 'attn.v_proj_weight')) for n in trained)
    assert len(trained) == 2 * (4 + 2)  # q and v of every block of both towers
    blk = model.backbone.visual.transformer.resblocks[3].attn
    assert torch.equal(blk.v_proj_weight, p[CM + 'visual.transformer.resblocks.3.attn.v_proj_weight'])
    assert torch.equal(blk.in_proj_bias, p[CM + 'visual.transformer.resblocks.3.attn.in_proj_bias'])


def test_clip_towers_compute_catseg_clip(converted):
    """Guidance taps, the dense map (CAT-Seg's forward_dense last block) at a resized grid, and the text tower."""
    conv, p, model, out, report = converted
    clip_p = {k[len(CM):]: v for k, v in p.items() if k.startswith(CM)}
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        res = model.backbone.extract(img, ('feats', 'dense'))
    ref = openai_visual(clip_p, img, 4, taps=(1, 2), dense=True)
    for a, b in zip(res['feats'], ref['taps']):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(res['dense'], ref['dense'], rtol=1e-4, atol=1e-5)
    tokens = model.text_encoder.tokenizer(['A photo of a cat in the scene'])
    with torch.no_grad():
        torch.testing.assert_close(model.text_encoder.clip.encode_text(tokens), clip_text(clip_p, tokens, 2),
                                   rtol=1e-4, atol=1e-5)


def test_round_trip_and_errors(converted):
    conv, p, model, out, report = converted
    from _common import ConversionError, shapes_of
    back, _ = conv.revert(out)
    assert set(back) == set(p) and all(torch.equal(back[k], p[k]) for k in p)
    with pytest.raises(ConversionError, match='prompt_tokens'):
        conv.convert(dict(p, **{CM + 'visual.transformer.prompt_tokens': torch.zeros(2, 4, 64)}))
    with pytest.raises(ConversionError, match='predictor.criterion.weight'):
        conv.convert(dict(p, **{'sem_seg_head.predictor.criterion.weight': torch.zeros(1)}))
    bad = dict(p, **{'upsample1.weight': torch.zeros(64, 8, 2, 2)})
    with pytest.raises(ConversionError, match='decode_head.upsample1.weight'):
        conv.convert(bad, shapes_of(model))


def test_eva_clip_variant():
    """A CAT-Seg checkpoint whose CLIP is an EVA02-CLIP (release naming, ``text.*``; DeCLIP's integration)."""
    from _common import shapes_of
    conv = converter('catseg_to_declip_mm')
    cfg = Config.fromfile(osp.join(REPO, 'configs/catseg/catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py'))
    model = _build(cfg.model).eval()
    p = randomize(catseg_layout(32, 64, hidden=32, app_proj=32, text_proj=32, dec_dims=(32, 16), dec_guid=(32, 16),
                                dec_guid_proj=(8, 4), window=4, grid=8, pad_len=16), seed=4)
    p.update(randomize(eva_clip_visual_layout(64, 4, 32, 14, head_dim=16, prefix=CM + 'visual.'), seed=5))
    p.update(randomize(text_layout(32, 2, 32, prefix=CM + 'text.'), seed=6))
    p[CM + 'logit_scale'] = torch.tensor(4.6)
    cos, sin = eva_rope_tables(14, 16)
    p.update({k: (cos if k.endswith('cos') else sin) for k in p if 'rope.freqs' in k})
    out, report = conv.convert(p, shapes_of(model))
    model.load_state_dict(out, strict=True)
    assert set(report.dropped) == {k for k in p if 'rope.freqs' in k}
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = model.backbone.extract(img, ('cls', ))['cls']
    ref = eva_clip_visual({k[len(CM):]: v for k, v in p.items() if k.startswith(CM)}, img, 4)['cls']
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    back, _ = conv.revert(out, eva_text=True)
    assert set(back) == set(p) - set(report.dropped) and all(torch.equal(back[k], p[k]) for k in back)


# CAT-Seg configs/vitb_384.yaml and vitl_336.yaml (+ eval.sh: sliding window, POOLING_SIZES [1, 1])
ORIGINAL = {
    'vitb16-384': dict(model='ViT-B-16', taps=(3, 7), text_dim=512, guid=768, clip=384, layers=2,
                       dense='maskclip_cls'),
    'vitl14-336': dict(model='ViT-L-14-336', taps=(7, 15), text_dim=768, guid=1024, clip=336, layers=2,
                       dense='maskclip_cls'),
    # DeCLIP's CAT-Seg (configs/eva_vitb_384.yaml as described by its authors): encode_dense('csa'), same head
    'eva02-b16-declip': dict(model='EVA02-B-16', taps=(3, 7), text_dim=512, guid=768, clip=384, layers=2,
                             dense='csa'),
}
BENCH = ('ade150', 'ade847', 'pc59', 'pc459', 'voc20', 'voc21')


@pytest.mark.parametrize('size', sorted(ORIGINAL))
@pytest.mark.parametrize('bench', BENCH)
def test_release_configs_equal_original_settings(size, bench):
    o = ORIGINAL[size]
    m = Config.fromfile(osp.join(REPO, f'configs/catseg/catseg_{size}-release_4xb1-80k_{bench}.py')).model
    assert m.backbone.checkpoint is None and m.text_encoder.checkpoint is None
    assert m.backbone.model_name == m.text_encoder.model_name == o['model']
    assert tuple(m.backbone.out_indices) == o['taps'] and m.backbone.dense_mode == o['dense']
    h = m.decode_head
    assert (h.text_dim, h.guidance_in_channels, h.num_layers, h.hidden_dim, h.num_heads, h.window_size) == \
        (o['text_dim'], o['guid'], o['layers'], 128, 4, 12)
    assert tuple(h.feature_resolution) == (24, 24) and tuple(h.test_pooling_size) == (1, 1)
    assert (h.prompt_channel, h.pad_len) == (1, 256) and m.clip_size == o['clip']
    assert m.template == 'A photo of a {} in the scene'
    assert m.slide_cfg == dict(out_size=640, kernel=384, stride=256, global_view=True)


def test_b16_release_layout_converts_strictly():
    """model_base.pth's layout (CAT-Seg ViT-B/16: 12+12 blocks, split q/k/v) maps onto the B/16 release config's
    model: every weight present, every shape equal."""
    from _common import shapes_of
    cfg = Config.fromfile(osp.join(REPO, 'configs/catseg/catseg_vitb16-384-release_4xb1-80k_ade150.py'))
    shapes = shapes_of(_build(cfg.model))
    layout = catseg_layout(512, 768)
    layout.update(openai_visual_layout(768, 12, 512, 14, prefix=CM + 'visual.', split_qkv=True))
    layout.update(text_layout(512, 12, 512, prefix=CM, split_qkv=True))
    layout[CM + 'logit_scale'] = ()
    src = {k: torch.empty(s, device='meta') for k, s in layout.items()}  # shapes only
    out, report = converter('catseg_to_declip_mm').convert(src, shapes)
    assert not report.missing and len(out) == len(shapes)


def test_b16_declip_eva_layout_converts_strictly():
    """The EVA02-B/16 CAT-Seg layout (EVA-CLIP release names, packed text q/k/v) onto the DeCLIP release config."""
    from _common import shapes_of
    cfg = Config.fromfile(osp.join(REPO, 'configs/catseg/catseg_eva02-b16-declip-release_4xb1-80k_ade150.py'))
    shapes = shapes_of(_build(cfg.model))
    layout = catseg_layout(512, 768)
    layout.update(eva_clip_visual_layout(768, 12, 512, 14, prefix=CM + 'visual.'))
    layout.update(text_layout(512, 12, 512, prefix=CM + 'text.'))
    layout[CM + 'logit_scale'] = ()
    src = {k: torch.empty(s, device='meta') for k, s in layout.items()}
    out, report = converter('catseg_to_declip_mm').convert(src, shapes)
    assert not report.missing and len(out) == len(shapes)
    assert len(report.dropped) == 2 + 2 * 12  # RoPE buffers
