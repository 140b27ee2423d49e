"""CLIPSelf F-ViT (mmdet 2.x) -> declip_mm FViT: synthetic checkpoint in CLIPSelf's layout, strict load, and the
converted detector computes what CLIPSelf's F-ViT computes (plain re-implementations in ``reference.py``)."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from .conftest import REPO, converter
from .reference import (convfc_shared, eva_clip_visual, eva_rope_tables, fvit_bbox_head_scores, fvit_layout,
                        fvit_pyramid, randomize)

CLASSES = ('circle', 'square', 'triangle', 'cross', 'ring', 'diamond')  # fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic; novel: 2, 4


def _build(model_cfg):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope
    import declip_mm  # noqa: F401
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(model_cfg)


def _clipself_tiny(seed=0):
    p = randomize(fvit_layout(64, 4, 32, 14, 16, fpn=32, conv=32, fc=32, num_classes=len(CLASSES)), seed=seed)
    cos, sin = eva_rope_tables(14, 16)
    for k in p:
        if k.endswith('rope.freqs_cos'):
            p[k] = cos
        elif k.endswith('rope.freqs_sin'):
            p[k] = sin
    p['roi_head.bbox_head.detect_temperature'] = torch.tensor(47.5)
    p['roi_head.bbox_head.all_embeddings'] = F.normalize(p['roi_head.bbox_head.all_embeddings'], dim=0)
    return p


def _tiny_model(p):
    from _common import shapes_of
    cfg = Config.fromfile(osp.join(REPO, 'configs/fvit/fvit_tiny-eva02_1xb4-1e_ov-shapes-synthetic.py'))
    cfg.model.backbone.update(dense_mode='maskclip')  # F-ViT's vlm map (as in the CLIPSelf configs)
    cfg.model.roi_head.bbox_head.text_embeddings = p['roi_head.bbox_head.all_embeddings'].t().clone()
    model = _build(cfg.model).eval()
    return model, shapes_of(model)


@pytest.fixture(scope='module')
def converted():
    conv = converter('clipself_fvit_to_declip_mm')
    p = _clipself_tiny()
    model, shapes = _tiny_model(p)
    out, report = conv.convert(p, shapes)
    model.load_state_dict(out, strict=True)
    return conv, p, model, out, report


def test_every_key_accounted_for(converted):
    conv, p, model, out, report = converted
    assert not report.missing
    assert set(report.mapped) | set(report.dropped) == set(p)
    assert set(report.dropped) == {k for k in p if 'rope' in k} | {
        'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias', 'roi_head.bbox_head.all_embeddings'}
    assert float(model.roi_head.bbox_head.fc_cls.logit_scale.detach()) == pytest.approx(47.5)


def test_backbone_and_pyramid_compute_clipself(converted):
    """Taps after blocks 0-2 + the no-attention last block, the L2-normalised dense CLIP map, and the pyramid."""
    conv, p, model, out, report = converted
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats, dense = model.backbone_forward(img, with_dense=True)
        pyr = model.neck.necks[0](feats)
    ref = eva_clip_visual(p, img, 4, taps=(0, 1, 2), last='maskclip', prefix='backbone.visual.')
    ref_taps = ref['taps'] + [ref['tokens'][:, 1:].transpose(1, 2).reshape(1, 64, 4, 4)]
    for a, b in zip(feats, ref_taps):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dense, F.normalize(ref['dense'], dim=1), rtol=1e-4, atol=1e-5)
    for a, b in zip(pyr, fvit_pyramid(p, ref_taps)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_box_head_scores_match_clipself(converted):
    """Detector scores (T_det cos), the CLIP-score ensemble (alpha base + background, beta novel) and boxes."""
    conv, p, model, out, report = converted
    head = model.roi_head.bbox_head
    g = torch.Generator().manual_seed(1)
    roi_feats, clip_emb = torch.randn(5, 32, 7, 7, generator=g), torch.randn(5, 32, generator=g)
    with torch.no_grad():
        logits, deltas = head(roi_feats)
        scores = head.ensemble_scores(logits, clip_emb)
    shared = convfc_shared(p, roi_feats)
    base = torch.tensor([c not in ('triangle', 'ring') for c in CLASSES] + [True])
    ref = fvit_bbox_head_scores(p, shared, clip_emb, base, alpha=0.1, beta=0.8, vlm_temperature=75.0)
    torch.testing.assert_close(scores, ref, rtol=1e-4, atol=1e-6)
    b = 'roi_head.bbox_head.'
    ref_deltas = F.linear(F.relu(F.linear(shared, p[b + 'reg_fcs.0.weight'], p[b + 'reg_fcs.0.bias'])),
                          p[b + 'fc_reg.weight'], p[b + 'fc_reg.bias'])
    torch.testing.assert_close(deltas, ref_deltas, rtol=1e-4, atol=1e-5)


def test_round_trip_and_embeddings(converted, tmp_path):
    conv, p, model, out, report = converted
    back, _ = conv.revert(out)
    assert set(back) == set(p) - set(report.dropped)
    assert all(torch.equal(back[k], p[k]) for k in back)
    again, _ = conv.convert(back)
    assert set(again) == set(out) and all(torch.equal(again[k], out[k]) for k in out)
    emb = conv.embeddings_from(p, CLASSES)
    from declip_mm.models.roi_heads.text_classifier import load_text_embeddings
    torch.testing.assert_close(load_text_embeddings(emb, CLASSES), model.roi_head.bbox_head.fc_cls.text_embeddings)


def test_unknown_and_mismatched_keys_are_named(converted):
    conv, p, model, out, report = converted
    from _common import ConversionError, shapes_of
    bad = dict(p, **{'roi_head.bbox_head.bg_embedding': torch.zeros(32, 1)})
    with pytest.raises(ConversionError, match='bg_embedding'):
        conv.convert(bad)
    bad = dict(p, **{'neck.lateral_convs.0.conv.weight': torch.zeros(32, 48, 1, 1)})
    with pytest.raises(ConversionError, match='neck.necks.1.lateral_convs.0.conv.weight'):
        conv.convert(bad, shapes_of(model))
    bad = {k: v for k, v in p.items() if k != 'rpn_head.rpn_cls.bias'}
    with pytest.raises(ConversionError, match='rpn_head.rpn_cls.bias'):
        conv.convert(bad, shapes_of(model))


def _mmcv1_buffers(depth, grids=()):
    """The non-persistent buffers of CLIPSelf's VisionRotaryEmbeddingFast (one module shared by the tower and every
    block) that mmcv 1.x's save_checkpoint writes anyway: the ``flag`` counter and the per-size ``freqs_*_N``."""
    prefixes = ['backbone.visual.rope.'] + [f'backbone.visual.blocks.{i}.attn.rope.' for i in range(depth)]
    out = {p + 'flag': torch.tensor(len(grids)) for p in prefixes}
    for n in grids:
        out.update({p + f'freqs_{t}_{n}': torch.zeros(n, 16) for p in prefixes for t in ('cos', 'sin')})
    return out


def test_mmcv1_rope_buffers_are_dropped_and_unknown_keys_named(converted):
    """CLIPSelf's released files hold ``rope.flag`` (1 + one per block) and may hold ``freqs_cos_N`` caches: they are
    dropped with a reason; any other key without a counterpart is an error naming it (not a TypeError)."""
    conv, p, model, out, report = converted
    from _common import ConversionError, shapes_of
    extra = _mmcv1_buffers(depth=4, grids=(196, ))
    out2, report2 = conv.convert(dict(p, **extra), shapes_of(model))
    assert set(out2) == set(out) and all(torch.equal(out2[k], out[k]) for k in out)
    assert set(extra) <= set(report2.dropped)
    assert sum(k.endswith('rope.flag') for k in report2.dropped) == 5
    for bad in ('backbone.visual.rope.theta', 'backbone.visual.blocks.1.attn.rope.flag2',
                'backbone.visual.blocks.0.attn.relative_position_index', 'backbone.visual.mystery.weight'):
        with pytest.raises(ConversionError, match=bad.replace('.', r'\.')):
            conv.convert(dict(p, **{bad: torch.zeros(1)}))


def test_mmcv1_saved_file_converts_on_the_command_line(tmp_path, monkeypatch, capsys):
    """A file laid out as mmcv 1.x saves a CLIPSelf F-ViT (meta with numpy scalars, rope.flag buffers)."""
    import sys
    import numpy as np
    mod = converter('clipself_fvit_to_declip_mm')
    src, dst = str(tmp_path / 'fvit_eva_vitb16_ovcoco.pth'), str(tmp_path / 'out.pth')
    p = dict(_clipself_tiny(), **_mmcv1_buffers(depth=4))
    torch.save({'meta': {'epoch': 3, 'iter': np.int64(1500), 'CLASSES': CLASSES, 'mmcv_version': '1.7.0'},
                'state_dict': p, 'optimizer': {}}, src)
    monkeypatch.setattr(sys, 'argv', [mod.__file__, src, dst])
    mod.main()
    assert 'rope.flag' in capsys.readouterr().out
    assert 'roi_head.bbox_head.fc_cls.logit_scale' in torch.load(dst, weights_only=True)['state_dict']


# settings of the CLIPSelf F-ViT configs (F-ViT/configs/ov_coco|ov_lvis/*_original.py), per released checkpoint
ORIGINAL = {
    'b16-coco': dict(model='EVA02-B-16', taps=(3, 5, 7, 11), size=640, fc=512, classes=65, alpha=0.1, beta=0.8,
                     t_vlm=75.0, t_det=50.0, score_thr=0.01, nms=0.4, max_det=100, rpn_norm=False,
                     strides=[4, 8, 16, 32]),
    'l14-coco': dict(model='EVA02-L-14-336', taps=(6, 10, 14, 23), size=896, fc=768, classes=65, alpha=0.1,
                     beta=0.8, t_vlm=75.0, t_det=50.0, score_thr=0.01, nms=0.4, max_det=100, rpn_norm=False,
                     strides=[3.5, 7, 14, 28]),
    'b16-lvis': dict(model='EVA02-B-16', taps=(3, 5, 7, 11), size=1024, fc=512, classes=1203, alpha=0.1, beta=0.6,
                     t_vlm=50.0, t_det=50.0, score_thr=0.0001, nms=0.5, max_det=300, rpn_norm=True,
                     strides=[4, 8, 16, 32]),
    'l14-lvis': dict(model='EVA02-L-14-336', taps=(6, 10, 14, 23), size=896, fc=768, classes=1203, alpha=0.1,
                     beta=0.4, t_vlm=50.0, t_det=50.0, score_thr=0.0001, nms=0.5, max_det=300, rpn_norm=True,
                     strides=[3.5, 7, 14, 28]),
}
CONFIGS = {
    'fvit_eva02-b16-clipself-patches_8xb8-3e_ov-coco-640': 'b16-coco',
    'fvit_eva02-b16-clipself-proposals_8xb8-3e_ov-coco-640': 'b16-coco',
    'fvit_eva02-b16-regionclip_8xb8-3e_ov-coco-640': 'b16-coco',
    'fvit_eva02-l14-336-clipself-patches_8xb8-3e_ov-coco-896': 'l14-coco',
    'fvit_eva02-l14-336-clipself-proposals_8xb8-3e_ov-coco-896': 'l14-coco',
    'fvit_eva02-l14-336-regionclip_8xb8-3e_ov-coco-896': 'l14-coco',
    'fvit_eva02-b16-clipself-patches_8xb8-48e_ov-lvis-1024': 'b16-lvis',
    'fvit_eva02-l14-336-clipself-patches_8xb8-48e_ov-lvis-896': 'l14-lvis',
}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_release_configs_equal_original_settings(name):
    o = ORIGINAL[CONFIGS[name]]
    cfg = Config.fromfile(osp.join(REPO, f'configs/fvit/{name}.py'))
    m = cfg.model
    assert m.backbone.checkpoint is None  # the converted detector holds the backbone
    assert m.backbone.model_name == o['model'] and tuple(m.backbone.out_indices) == o['taps']
    assert m.backbone.last_feat_mode == 'maskclip' and m.backbone.dense_mode == 'maskclip'
    assert m.data_preprocessor.batch_augments[0].size == (o['size'], o['size'])
    h = m.roi_head.bbox_head
    assert (h.fc_out_channels, h.num_classes, h.alpha, h.beta, h.vlm_temperature, h.logit_scale) == \
        (o['fc'], o['classes'], o['alpha'], o['beta'], o['t_vlm'], o['t_det'])
    assert h.text_embeddings.startswith('data/text_embeddings/clipself/')
    assert list(m.roi_head.bbox_roi_extractor.featmap_strides) == o['strides']
    assert (m.rpn_head.get('norm_cfg') is not None) == o['rpn_norm']
    r = m.test_cfg.rcnn
    assert (r.score_thr, r.nms.iou_threshold, r.max_per_img) == (o['score_thr'], o['nms'], o['max_det'])
    assert ('mask_head' in m.roi_head) == CONFIGS[name].endswith('lvis')


@pytest.mark.parametrize('name', ['fvit_eva02-b16-clipself-proposals_8xb8-3e_ov-coco-640',
                                  'fvit_eva02-b16-clipself-patches_8xb8-48e_ov-lvis-1024'])
def test_b16_release_layout_converts_strictly(name):
    """The B/16 layout of the released files (widths from CLIPSelf's configs) maps onto the model each B/16
    release config builds: every weight present, every shape equal."""
    from _common import shapes_of
    lvis = 'lvis' in name
    layout = fvit_layout(768, 12, 512, 14, 64, num_classes=1203 if lvis else 65, mask=lvis, rpn_norm=lvis)
    cfg = Config.fromfile(osp.join(REPO, f'configs/fvit/{name}.py'))
    cfg.model.roi_head.bbox_head.text_embeddings = None
    shapes = shapes_of(_build(cfg.model))
    src = {k: torch.empty(s, device='meta') for k, s in layout.items()}  # shapes only
    src.update(_mmcv1_buffers(depth=12))  # the 13 rope.flag buffers of each released B/16 file
    out, report = converter('clipself_fvit_to_declip_mm').convert(src, shapes)
    assert not report.missing and len(out) == len(shapes)
    assert sum(k.endswith('rope.flag') for k in report.dropped) == 13
