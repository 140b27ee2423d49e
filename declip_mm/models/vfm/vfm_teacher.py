"""Frozen vision-foundation-model (VFM) teachers for DeCLIP's context distillation, built with timm.

Each variant declares its timm architecture, patch size, normalisation and which features are used
(method doc section 3):

* DINOv2 S/B/L/G (register variants, as the official code): last block, final norm applied, CLS + 4 registers removed;
* DINO v1 ViT-B/16 and ViT-B/8: last block + final norm, CLS removed; position embedding resized as the DINO repo
  does (bicubic with ``scale_factor = (n + 0.1) / sqrt(N)``, no antialias), see ``dino_v1_pos_embed``;
* SAM ViT-B/L image encoder: neck output (256-d, stride 16), absolute position embedding resized as the SAM code
  used by DeCLIP does (plain bicubic to the new grid, no antialias), see ``sam_pos_embed``;
* DINOv3 S/B/L (not in the paper): last block + final norm, CLS + 4 registers removed.

Weights come only from a local file (``checkpoint``): original releases (DINOv2 hub ``.pth``, DINO, SAM
``sam_vit_*.pth``, DINOv3) and timm-format files are accepted through timm's own ``checkpoint_filter_fn``. A missing
file or a key/shape mismatch raises an error that names the problem. Nothing is ever downloaded (``pretrained=False``).
"""
import sys
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from declip_mm.models.backbones.checkpoint import read_checkpoint
from declip_mm.models.backbones.towers import dino_v1_pos_embed  # noqa: F401 (re-exported)
from declip_mm.registry import MODELS

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# name -> (timm architecture, patch size, mean, std, feature description, extra timm kwargs)
VFM_SPECS: Dict[str, dict] = {
    'dinov2_s': dict(arch='vit_small_patch14_reg4_dinov2', patch=14, kwargs=dict(dynamic_img_size=True),
                     features='last block + final norm; CLS and 4 registers removed'),
    'dinov2_b': dict(arch='vit_base_patch14_reg4_dinov2', patch=14, kwargs=dict(dynamic_img_size=True),
                     features='last block + final norm; CLS and 4 registers removed'),
    'dinov2_l': dict(arch='vit_large_patch14_reg4_dinov2', patch=14, kwargs=dict(dynamic_img_size=True),
                     features='last block + final norm; CLS and 4 registers removed'),
    'dinov2_g': dict(arch='vit_giant_patch14_reg4_dinov2', patch=14, kwargs=dict(dynamic_img_size=True),
                     features='last block + final norm; CLS and 4 registers removed'),
    'dino_b16': dict(arch='vit_base_patch16_224', patch=16, kwargs=dict(dynamic_img_size=True), pos='dino_v1',
                     features='last block + final norm; CLS removed; DINO-repo pos-embed interpolation'),
    'dino_b8': dict(arch='vit_base_patch8_224', patch=8, kwargs=dict(dynamic_img_size=True), pos='dino_v1',
                    features='last block + final norm; CLS removed; DINO-repo pos-embed interpolation'),
    'sam_b': dict(arch='samvit_base_patch16', patch=16, kwargs=dict(), pos='sam',
                  features='image-encoder neck output (256-d); pos-embed resized bicubically, no antialias'),
    'sam_l': dict(arch='samvit_large_patch16', patch=16, kwargs=dict(), pos='sam',
                  features='image-encoder neck output (256-d); pos-embed resized bicubically, no antialias'),
    'dinov3_s': dict(arch='vit_small_patch16_dinov3', patch=16, kwargs=dict(),
                     features='last block + final norm; CLS and 4 registers removed'),
    'dinov3_b': dict(arch='vit_base_patch16_dinov3', patch=16, kwargs=dict(),
                     features='last block + final norm; CLS and 4 registers removed'),
    'dinov3_l': dict(arch='vit_large_patch16_dinov3', patch=16, kwargs=dict(),
                     features='last block + final norm; CLS and 4 registers removed'),
}


VFM_TAPS = ('tokens', 'q', 'k', 'v', 'qk')


def sam_pos_embed(pos_embed: torch.Tensor, grid_hw: Tuple[int, int]) -> torch.Tensor:
    """SAM's absolute position embedding (1, H0, W0, C) for a (h, w) token grid -> (1, h, w, C).

    As the SAM image encoder used by the original code: unchanged at the native grid, else bicubic interpolation
    to the new size (``align_corners=False``) without antialias (timm's default resize antialiases).
    """
    from timm.layers import resample_abs_pos_embed_nhwc
    return resample_abs_pos_embed_nhwc(pos_embed, [int(grid_hw[0]), int(grid_hw[1])], antialias=False)


def _load_file(path: str) -> dict:
    """State dict of a local VFM checkpoint (``.pth`` / ``.pt`` / ``.safetensors``; DINO's ``teacher`` unwrapped)."""
    return read_checkpoint(path, wrapper_keys=('state_dict', 'model', 'module', 'teacher'))[0]


@MODELS.register_module()
class VFMTeacher(BaseModule):
    """A frozen timm VFM returning its patch-token map.

    Args:
        name: one of ``VFM_SPECS`` (``dinov2_s/b/l/g``, ``dino_b16``, ``dino_b8``, ``sam_b``, ``sam_l``,
            ``dinov3_s/b/l``).
        checkpoint: local weight file; ``None`` keeps the random init (tests / the tiny default only).
        model_kwargs: extra timm kwargs (tests: tiny widths/depths, e.g. ``dict(embed_dim=64, depth=2,
            num_heads=4)``).
        strict: require an exact key/shape match after timm's checkpoint filter.

    ``forward(img)`` takes (B, 3, h, w) normalised with ``self.mean`` / ``self.std`` (0-255 RGB), h and w multiples
    of ``patch_size``, and returns (B, Cv, h/p, w/p). Always frozen and in eval mode.
    """

    def __init__(self, name: str = 'dinov2_b', checkpoint: Optional[str] = None,
                 model_kwargs: Optional[dict] = None, strict: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if name not in VFM_SPECS:
            raise KeyError(f'VFMTeacher: unknown VFM {name!r}; choose one of {sorted(VFM_SPECS)}')
        import timm
        spec = VFM_SPECS[name]
        self.name = name
        self.arch = spec['arch']
        self.patch_size = spec['patch']
        self.mean = spec.get('mean', IMAGENET_MEAN)
        self.std = spec.get('std', IMAGENET_STD)
        self.features = spec['features']
        self.is_sam = name.startswith('sam')
        self.pos_mode = spec.get('pos', 'timm')
        kwargs = dict(spec['kwargs'])
        kwargs.update(model_kwargs or {})
        kwargs.setdefault('num_classes', 0)
        self.model = timm.create_model(self.arch, pretrained=False, **kwargs)
        # fused SDPA in every attention block, whatever TIMM_FUSED_ATTN says (same math, no N x N attention tensor)
        for m in self.model.modules():
            if hasattr(m, 'fused_attn'):
                m.fused_attn = True
        self.checkpoint = checkpoint
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, strict=strict)
        self.model.requires_grad_(False)
        self.model.eval()

    @property
    def num_prefix_tokens(self) -> int:
        return 0 if self.is_sam else int(getattr(self.model, 'num_prefix_tokens', 1))

    @property
    def out_channels(self) -> int:
        return int(self.model.num_features)

    def load_checkpoint(self, path: str, strict: bool = True) -> None:
        sd = _load_file(path)
        module = sys.modules[type(self.model).__module__]
        if hasattr(module, 'checkpoint_filter_fn'):
            try:
                sd = module.checkpoint_filter_fn(sd, self.model)
            except Exception as e:  # noqa: BLE001 - timm's converters fail on a wrong-size model
                raise ValueError(f'VFMTeacher({self.name!r}, arch {self.arch}): checkpoint {path!r} does not match '
                                 f'the model ({type(e).__name__}: {e}). Is it the right model variant?') from e
        own = self.model.state_dict()
        missing = sorted(k for k in own if k not in sd)
        unexpected = sorted(k for k in sd if k not in own)
        shape = sorted(f'{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}'
                       for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape))
        if shape or (strict and (missing or unexpected)):
            raise ValueError(
                f'VFMTeacher({self.name!r}, arch {self.arch}): checkpoint {path!r} does not match. '
                f'missing {len(missing)} {missing[:8]}, unexpected {len(unexpected)} {unexpected[:8]}, '
                f'shape mismatches {shape[:8]}. Is it the right model variant?')
        self.model.load_state_dict(sd, strict=strict)

    def init_weights(self):
        # never let mmengine's recursive init_weights re-initialise the timm model (it has its own init_weights)
        self._is_init = True

    def train(self, mode: bool = True):
        super().train(False)
        return self

    def prepare(self, img: torch.Tensor, mean: Optional[torch.Tensor] = None, std: Optional[torch.Tensor] = None,
                size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """(B, 3, H, W) images normalised with ``mean`` / ``std`` (another model's, e.g. CLIP's; None: 0-255 RGB) ->
        this VFM's input in float32: its own normalisation, then resized to ``size`` (bilinear) or cut to a
        patch multiple (the bottom / right remainder, which a stride-p patch embedding ignores anyway)."""
        x = img.float()
        if mean is not None:
            x = x * std.to(x).view(1, -1, 1, 1) + mean.to(x).view(1, -1, 1, 1)
        x = (x - x.new_tensor(self.mean).view(1, -1, 1, 1)) / x.new_tensor(self.std).view(1, -1, 1, 1)
        if size is not None:
            return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        p = self.patch_size
        H, W = x.shape[-2:]
        if H < p or W < p:
            raise ValueError(f'crop {H}x{W} is smaller than the VFM patch {p}')
        return x[..., :H // p * p, :W // p * p]

    def output_grid(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        return hw[0] // self.patch_size, hw[1] // self.patch_size

    def forward(self, img: torch.Tensor, tap: str = 'tokens') -> torch.Tensor:
        """(B, 3, h, w) -> (B, Cv, h/p, w/p) patch map of ``tap``:

        * ``'tokens'``: the features listed in ``VFM_SPECS`` (last block + final norm, or SAM's neck output);
        * ``'q'`` / ``'k'`` / ``'v'`` / ``'qk'`` (q + k): the last block's query / key / value (the output of its
          ``attn.qkv`` projection, before any RoPE), heads concatenated, prefix tokens removed (CorrCLIP uses
          DINO's q + k).
        """
        if tap not in VFM_TAPS:
            raise ValueError(f'VFMTeacher: tap must be one of {VFM_TAPS}, got {tap!r}')
        h, w = img.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f'VFMTeacher({self.name}): input {h}x{w} is not a multiple of the patch size '
                             f'{self.patch_size}')
        gh, gw = h // self.patch_size, w // self.patch_size
        if tap != 'tokens':
            return self._qkv_tap(img, tap, gh, gw)
        if self.pos_mode == 'sam':
            return self._sam_features(img)  # (B, 256, h/p, w/p) neck output
        x = self._dino_v1_features(img) if self.pos_mode == 'dino_v1' else self.model.forward_features(img)
        return self._to_map(x, gh, gw)

    def _to_map(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1, x.shape[-1])[:, self.num_prefix_tokens:]
        if x.shape[1] != gh * gw:
            raise RuntimeError(f'VFMTeacher({self.name}): got {x.shape[1]} patch tokens, expected {gh}x{gw}')
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], gh, gw)

    def _qkv_tap(self, img: torch.Tensor, tap: str, gh: int, gw: int) -> torch.Tensor:
        qkv_layer = getattr(getattr(self.model.blocks[-1], 'attn', None), 'qkv', None)
        if not isinstance(qkv_layer, torch.nn.Linear):
            raise NotImplementedError(f'VFMTeacher({self.name}): tap {tap!r} needs a fused attn.qkv projection in '
                                      'the last block')
        out = {}
        handle = qkv_layer.register_forward_hook(lambda mod, inp, o: out.__setitem__('qkv', o))
        try:
            self.forward(img)
        finally:
            handle.remove()
        qkv = out['qkv']
        q, k, v = qkv.reshape(qkv.shape[0], -1, qkv.shape[-1]).chunk(3, dim=-1)  # (B, T, C) each, heads concat.
        x = {'q': q, 'k': k, 'v': v, 'qk': q + k}[tap]
        return self._to_map(x, gh, gw)

    # timm's forward_features with the original code's position-embedding resize (timm's antialiases)
    def _sam_features(self, img: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.patch_embed(img)  # (B, h, w, C)
        if m.pos_embed is not None:
            x = x + sam_pos_embed(m.pos_embed, tuple(x.shape[1:3]))
        x = m.norm_pre(m.patch_drop(m.pos_drop(x)))
        x = m.blocks(x)
        return m.neck(x.permute(0, 3, 1, 2))

    def _dino_v1_features(self, img: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.patch_embed(img)  # (B, h, w, C) with dynamic_img_size
        b, h, w, c = x.shape
        x = torch.cat([m.cls_token.expand(b, -1, -1), x.reshape(b, h * w, c)], dim=1)
        x = m.pos_drop(x + dino_v1_pos_embed(m.pos_embed, (h, w)))
        x = m.norm_pre(m.patch_drop(x))
        x = m.blocks(x)
        return m.norm(x)
