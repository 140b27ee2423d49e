"""Shared helpers for the segmentation tests (tiny random CLIPs, generated data, CPU)."""
import copy
import math
import os.path as osp

import torch
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CATSEG_CFG = osp.join(REPO, 'configs', 'catseg', 'catseg_tiny-eva02_1xb2-4iter_ov-scenes-synthetic.py')
TINY_ZS_CFG = osp.join(REPO, 'configs', 'zeroshot_seg', 'trainingfree_tiny-eva02_ov-scenes-synthetic.py')


def tiny_model_cfg(path, **overrides):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    m = copy.deepcopy(cfg.model.to_dict())
    m.update(overrides)
    return m


IMNET_MEAN = torch.tensor([123.675, 116.28, 103.53])
IMNET_STD = torch.tensor([58.395, 57.12, 57.375])
TINY_OPENAI = dict(embed_dim=32, text_cfg=dict(width=32, heads=2, layers=2),
                   vision_cfg=dict(width=64, layers=4, head_width=16))


def peaky(module, seed=3, with_cls=False):
    """Non-trivial norms / biases and larger projections, so that a wrong formula cannot hide behind ones, zeros
    and a near-uniform attention; ``with_cls``: the class embedding / CLS token too (CorrCLIP's mask class tokens
    start from it)."""
    g = torch.Generator().manual_seed(seed)
    pos = ('positional_embedding', 'pos_embed') + (('class_embedding', 'cls_token') if with_cls else ())
    with torch.no_grad():
        for n, p in module.named_parameters():
            if n.endswith('bias') or 'norm' in n or 'ln_' in n:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            if n.endswith(('trunk.head.weight', 'visual.proj')):
                p.normal_(0, 0.1, generator=g)
            if n.endswith(pos):
                p.normal_(0, 0.5, generator=g)
    return module


def tiny_openai(cfg):
    """A tiny-config model dict switched to a tiny OpenAI ViT-B/16 (vanilla dense path, DINO-scale position resize)."""
    cfg['backbone'].update(model_name='ViT-B-16', model_overrides=TINY_OPENAI, dense_mode='vanilla',
                           pos_embed_resize='dino_scale')
    cfg['text_encoder'].update(model_name='ViT-B-16', model_overrides=TINY_OPENAI)
    return cfg


def build_peaky_vfm_model(cfg, with_cls=False):
    """Seed 0, build, eval, then :func:`peaky` on the backbone and the proxy's VFM."""
    torch.manual_seed(0)
    m = build_seg_model(cfg).eval()
    peaky(m.backbone, with_cls=with_cls)
    peaky(m.proxy.vfm, with_cls=with_cls)
    return m


def build_seg_model(mcfg):
    import declip_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    from declip_mm.registry import SEG_MODELS
    init_default_scope('mmseg')
    return SEG_MODELS.build(mcfg)


def ref_pos_embed(pos, gh, gw):
    """The originals' position-embedding resize (DINO's ``+ 0.1`` scale-factor form), written from ProxyCLIP
    open_clip/transformer.py:540-558 and CorrCLIP CorrCLIPv1/open_clip/transformer.py:637-654 (the same code).
    pos (1+N, C) -> (1+gh*gw, C)."""
    N = pos.shape[0] - 1
    if N == gh * gw and gh == gw:
        return pos
    patch = pos[1:].reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), -1).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((gh + 0.1) / math.sqrt(N), (gw + 0.1) / math.sqrt(N)), mode='bicubic')
    assert patch.shape[-2:] == (gh, gw)
    return torch.cat([pos[:1], patch.permute(0, 2, 3, 1).reshape(gh * gw, -1)], dim=0)
