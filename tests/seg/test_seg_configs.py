"""Segmentation config settings that change benchmark numbers: the decoupled block's attention scale.

Training-free (paper Table 5): s = 1/sqrt(d).  CAT-Seg with DeCLIP weights: s = 1 (the released weights and the
DeCLIP CAT-Seg code use no 1/sqrt(d)).  The resolved scale is checked on a backbone built from each config's own
backbone dict (tiny widths, same family and mode).
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from .conftest import REPO

ZS = sorted(glob.glob(osp.join(REPO, 'configs', 'zeroshot_seg', '*.py')))
CATSEG = sorted(glob.glob(osp.join(REPO, 'configs', 'catseg', '*.py')))


def _built_scale(bb_cfg):
    from declip_mm.models.backbones import DeCLIPViT, clip_family, tiny_clip_overrides
    kw = {k: v for k, v in bb_cfg.items() if k in ('model_name', 'dense_mode', 'attn_scale')}
    bb = DeCLIPViT(model_overrides=tiny_clip_overrides(clip_family(kw['model_name'])), out_types=('dense', ), **kw)
    return bb.attn_scale, bb.head_dim


def test_config_lists_are_complete():
    assert len(ZS) >= 17 and len(CATSEG) >= 34


@pytest.mark.parametrize('path', ZS, ids=[osp.basename(p) for p in ZS])
def test_training_free_configs_use_inverse_sqrt_d(path):
    bb = Config.fromfile(path).model.backbone
    assert bb.get('attn_scale') == 'sqrt', f'{osp.basename(path)}: training-free segmentation needs s = 1/sqrt(d)'
    scale, d = _built_scale(bb)
    assert scale == pytest.approx(d ** -0.5)


@pytest.mark.parametrize('path', CATSEG, ids=[osp.basename(p) for p in CATSEG])
def test_catseg_configs_keep_unit_scale(path):
    bb = Config.fromfile(path).model.backbone
    if bb.dense_mode == 'csa':  # DeCLIP weights: trained and released with s = 1
        assert bb.get('attn_scale') == 'none'
        scale, _ = _built_scale(bb)
        assert scale == 1.0
    else:  # OpenAI CLIP: the official dense path (value path + CLS) has no attention, so no scale
        assert bb.dense_mode == 'maskclip_cls' and bb.get('attn_scale', 'auto') in ('auto', 'none')
