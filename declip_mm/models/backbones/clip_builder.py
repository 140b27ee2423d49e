"""Build open_clip CLIP models offline from their registered configs (no weights, no hub).

Supported architectures (open_clip config names): OpenAI-style ``ViT-B-16``, ``ViT-L-14``, ``ViT-L-14-336``,
``ViT-B-16-quickgelu`` (MetaCLIP B/16: open_clip's ``metaclip_400m`` / ``metaclip_fullcc`` weights, the same
architecture as OpenAI's) and EVA02-CLIP ``EVA02-B-16``, ``EVA02-L-14``, ``EVA02-L-14-336`` (timm
``eva02_*_clip_*`` trunks).
"""
import contextlib
import copy
from typing import Optional

import torch.nn as nn

SUPPORTED_MODELS = ('ViT-B-16', 'ViT-L-14', 'ViT-L-14-336', 'ViT-B-16-quickgelu', 'EVA02-B-16', 'EVA02-L-14',
                    'EVA02-L-14-336')

# CLIP's image normalisation on 0-255 RGB (OpenAI and EVA-CLIP use the same statistics).
CLIP_MEAN = (122.7709383, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.3231630)


def clip_family(model_name: str) -> str:
    """'eva' for EVA02-CLIP (timm trunk), 'openai' for open_clip's own VisionTransformer."""
    return 'eva' if model_name.upper().startswith('EVA') else 'openai'


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def tiny_clip_overrides(family: str = 'eva') -> dict:
    """``model_overrides`` for a tiny random CLIP used in tests and the embedded defaults.

    Vision: width 64, 4 blocks, 4 heads (head dim 16), patch 16; embed dim 32; text: width 32, 2 layers, 2 heads.
    """
    text_cfg = dict(width=32, heads=2, layers=2)
    if family == 'eva':
        return dict(embed_dim=32, text_cfg=text_cfg,
                    vision_cfg=dict(timm_kwargs=dict(embed_dim=64, depth=4, num_heads=4)))
    if family == 'openai':
        return dict(embed_dim=32, text_cfg=text_cfg, vision_cfg=dict(width=64, layers=4, head_width=16))
    raise ValueError(f"family must be 'eva' or 'openai', got {family!r}")


class VisualOnly(nn.Module):
    """Holds just an open_clip image tower as ``.visual`` so parameter names stay ``visual.*``."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual


def build_clip_model(model_name: str, model_overrides: Optional[dict] = None,
                     quick_gelu: Optional[bool] = None, with_text: bool = True) -> nn.Module:
    """Instantiate an open_clip CLIP / CustomTextCLIP with random weights (``with_text=False``: the image tower
    only, wrapped in ``VisualOnly``; faster to build).

    Args:
        model_name: open_clip config name (see ``SUPPORTED_MODELS``; any open_clip ViT config also works).
        model_overrides: dict deep-merged into the open_clip config.  For EVA models,
            ``vision_cfg.timm_kwargs`` is passed to ``timm.create_model`` (e.g. ``depth``, ``embed_dim``).
        quick_gelu: OpenAI weights need QuickGELU. ``None``: True for the OpenAI family, False for EVA.
    """
    import open_clip
    from open_clip.model import CLIP, CustomTextCLIP

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ValueError(f'Unknown open_clip model config {model_name!r}; supported: {SUPPORTED_MODELS}')
    _check_override_keys(model_overrides or {})
    cfg = _deep_merge(cfg, model_overrides or {})
    family = clip_family(model_name)
    vision_cfg = cfg['vision_cfg']
    timm_kwargs = vision_cfg.pop('timm_kwargs', None)
    if family == 'eva':
        vision_cfg['timm_model_pretrained'] = False
        # RoPE in timm's bands mode, so that ``trunk.rope.get_embed(shape)`` builds the embedding of any grid
        timm_kwargs = {'dynamic_img_size': True, **(timm_kwargs or {})}
    custom_text = cfg.pop('custom_text', False)
    cfg['quick_gelu'] = (family == 'openai') if quick_gelu is None else bool(quick_gelu)
    with _timm_create_kwargs(timm_kwargs):
        if with_text:
            model = (CustomTextCLIP if custom_text else CLIP)(**cfg)
        else:
            from open_clip.model import _build_vision_tower
            model = VisualOnly(_build_vision_tower(cfg['embed_dim'], vision_cfg, cfg['quick_gelu']))
    model.eval()
    return model


def _check_override_keys(overrides: dict) -> None:
    """Unknown ``model_overrides`` keys are an error (a typo would otherwise be merged in and ignored)."""
    import dataclasses
    import inspect

    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg, CustomTextCLIP
    top = {'custom_text'}
    for cls in (CLIP, CustomTextCLIP):
        top |= set(inspect.signature(cls.__init__).parameters) - {'self'}
    unknown = [k for k in overrides if k not in top]
    for key, cfg_cls, free in (('vision_cfg', CLIPVisionCfg, {'timm_kwargs'}), ('text_cfg', CLIPTextCfg, set())):
        fields = {f.name for f in dataclasses.fields(cfg_cls)} | free
        unknown += [f'{key}.{k}' for k in (overrides.get(key) or {}) if k not in fields]
    if unknown:
        raise ValueError(f'model_overrides: unknown key(s) {unknown} (top level: open_clip CLIP arguments; '
                         'vision_cfg / text_cfg: open_clip CLIPVisionCfg / CLIPTextCfg fields, plus '
                         'vision_cfg.timm_kwargs for EVA trunks)')


@contextlib.contextmanager
def _timm_create_kwargs(timm_kwargs: Optional[dict]):
    """open_clip's TimmModel forwards no architecture kwargs to ``timm.create_model``; inject ours (e.g. a tiny
    ``depth`` / ``embed_dim``) for the duration of the build instead of building the full trunk and replacing it."""
    if not timm_kwargs:
        yield
        return
    import open_clip.timm_model as tm
    real = tm.timm

    class _Proxy:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def create_model(*args, **kwargs):
            return real.create_model(*args, **{**kwargs, **timm_kwargs})

    tm.timm = _Proxy()
    try:
        yield
    finally:
        tm.timm = real
