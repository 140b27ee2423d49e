"""Every config under ``configs/`` (except ``_base_`` fragments) is built into a model, not only parsed.

Random weights.  To stay fast on CPU the CLIP and VFM towers keep their architecture, depth and joint embedding
width but get a narrow trunk (width 64, 4 heads; text tower width 32, 2 layers; CLIP ResNets, fast to build, keep
their width), checkpoint and text-embedding
files are dropped (the files are not in the repository) and the channel counts that follow the trunk width
(``in_channels`` of necks, ``guidance_in_channels`` of the CAT-Seg head) follow it.  Nothing else is changed, so a
config whose model cannot be built (unknown type, a keyword the module does not take, ...) fails here.  New configs
are picked up by the glob.
"""
import copy
import glob
import os.path as osp

import pytest
import torch.nn as nn
from mmengine.config import Config, ConfigDict

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p.split(osp.sep))
NARROW = 64
TRUNK_WIDTHS = {768, 1024}  # ViT-B / ViT-L trunk widths (neck / guidance inputs follow them)


def narrow_clip_overrides(family: str) -> dict:
    """Keep depth and joint embedding width, shrink the trunk and the text tower."""
    text_cfg = dict(width=32, heads=2, layers=2)
    if family == 'eva':
        return dict(text_cfg=text_cfg, vision_cfg=dict(timm_kwargs=dict(embed_dim=NARROW, num_heads=4)))
    return dict(text_cfg=text_cfg, vision_cfg=dict(width=NARROW, head_width=16))


def shrink(node, state):
    """Return a copy of the model config with the fast-build changes described in the module docstring."""
    from declip_mm.models.backbones import SUPPORTED_MODELS, clip_family
    from declip_mm.models.backbones.clip_resnet import RESNET_MODELS
    if isinstance(node, list):
        return [shrink(v, state) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: shrink(v, state) for k, v in node.items()}
    if node.get('type') == 'CLIPResNet' and node.get('model_name') in RESNET_MODELS:
        state['clip'].append(node['model_name'])  # CLIP ResNets build fast at full width (channels set the neck's)
    elif node.get('model_name') in SUPPORTED_MODELS:
        if not node.get('model_overrides'):  # configs that already use a tiny CLIP keep it
            node['model_overrides'] = narrow_clip_overrides(clip_family(node['model_name']))
            state['narrowed'] = True
        state['clip'].append(node['model_name'])
    if node.get('type') == 'VFMTeacher':
        kw = dict(node.get('model_kwargs') or {})
        kw.setdefault('embed_dim', NARROW)
        kw.setdefault('num_heads', 4)
        node['model_kwargs'] = kw
    for key in ('checkpoint', 'pretrained', 'text_embeddings'):
        if isinstance(node.get(key), str):
            node[key] = None
    return node


def fix_widths(node, narrowed):
    if isinstance(node, list):
        return [fix_widths(v, narrowed) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if narrowed and k in ('in_channels', 'guidance_in_channels'):
            if isinstance(v, int) and v in TRUNK_WIDTHS:
                v = NARROW
            elif isinstance(v, (list, tuple)) and v and all(isinstance(c, int) and c in TRUNK_WIDTHS for c in v):
                v = [NARROW] * len(v)
        out[k] = fix_widths(v, narrowed)
    return out


@pytest.fixture(autouse=True)
def fast_truncated_normal(monkeypatch):
    """timm's truncated-normal init (erfinv) dominates the build time on CPU; a clamped normal is as random."""
    import timm.layers.weight_init as wi
    monkeypatch.setattr(wi, '_trunc_normal_', lambda t, mean, std, a, b: t.normal_(mean, std).clamp_(a, b))


def test_every_config_directory_is_covered():
    dirs = {osp.relpath(p, osp.join(REPO, 'configs')).split(osp.sep)[0] for p in CONFIGS}
    assert {'catseg', 'declip', 'fvit', 'ovdquo', 'zeroshot_seg'} <= dirs
    assert len(CONFIGS) >= 80


@pytest.mark.filterwarnings('ignore:TextEmbeddingClassifier')
@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, osp.join(REPO, 'configs')) for p in CONFIGS])
def test_config_builds(path):
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    state = dict(narrowed=False, clip=[])
    mcfg = shrink(copy.deepcopy(cfg.model.to_dict()), state)
    mcfg = fix_widths(mcfg, state['narrowed'])
    model = MODELS.build(ConfigDict(mcfg))  # mmdet reads train_cfg / test_cfg by attribute
    assert isinstance(model, nn.Module) and model.__class__.__name__ == cfg.model.type.split('.')[-1]
    assert state['clip'], 'every shipped model contains a CLIP tower'
    # narrowed CLIP towers keep the configured depth, so out_indices / trainable blocks are checked for real
    from declip_mm.models.backbones import CLIPResNet, DeCLIPViT, clip_family
    vits = [m for m in model.modules() if isinstance(m, DeCLIPViT)]
    assert vits or any(isinstance(m, CLIPResNet) for m in model.modules()), f'{path}: no CLIP tower built'
    for v in vits:
        if v.model_overrides == narrow_clip_overrides(clip_family(v.model_name)):
            assert v.num_blocks == {'B': 12, 'L': 24}[v.model_name.split('-')[1]], v.model_name
