"""CLIPResNet: OpenAI CLIP's ModifiedResNet (``RN50`` / ``RN50x4``, built by open_clip) as a frozen mmdet backbone.

The image tower of OV-DQUO's (and CORA's) OV-COCO configs:

* every BatchNorm is a frozen BatchNorm (torchvision ``FrozenBatchNorm2d``, eps 1e-5, through open_clip's
  ``freeze_batch_norm_2d``), every parameter is frozen and the module stays in eval mode;
* ``forward`` returns the stage outputs of ``out_indices`` (mmdet ResNet numbering: 0 = ``layer1``);
  the default ``(1, 2, 3)`` gives C3 / C4 / C5 = ``layer2`` / ``layer3`` / ``layer4`` at strides 8 / 16 / 32 with
  512 / 1024 / 2048 channels (RN50) or 640 / 1280 / 2560 (RN50x4);
* ``layer4`` (res5) and ``attnpool`` stay available for the CLIP region features
  (``declip_mm.models.roi_heads.clip_region_features``);
* an optional CORA *region prompt*: a state-dict fragment (``region_prompt_R50.pth`` / ``_R50x4.pth``, key
  ``attnpool.positional_embedding``, (g*g+1, C5 channels)) merged into the CLIP weights before the strict load.

Weights come from a local file: OpenAI's TorchScript archive (``RN50.pt``, read without TorchScript or pickle code)
or an open_clip state dict (``visual.*``), read by ``backbones.checkpoint``.

Key names (for checkpoint converters): ours are ``visual.<ModifiedResNet key>`` under this module (in a detector
``backbone.visual.conv1.weight``, ``backbone.visual.layer4.0.bn1.running_var``,
``backbone.visual.attnpool.positional_embedding``, ...).  The original OV-DQUO / CORA detector stores the same
ModifiedResNet keys twice: ``backbone.0.body.<key>`` for the stem and layer1-layer4 (torchvision
IntermediateLayerGetter), plus ``backbone.0.attn_pool.<attnpool key>`` and ``backbone.0.layer4.<layer4 key>`` (the
same modules again); its frozen BN has no ``num_batches_tracked``.  OpenAI's file names them ``visual.<key>``.
"""
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere
from .checkpoint import CheckpointError, load_clip_state_dict, load_into, read_checkpoint
from .clip_builder import VisualOnly, build_clip_model
from .pending_weights import check_weights_loaded, defer_missing_checkpoint

RESNET_MODELS = ('RN50', 'RN101', 'RN50x4', 'RN50x16', 'RN50x64')


def tiny_resnet_overrides(width: int = 8, image_size: int = 96, embed_dim: int = 32, head_width: int = 32) -> dict:
    """``model_overrides`` for a tiny random ModifiedResNet (tests): one bottleneck per stage, C5 = 32*width
    channels, attnpool grid image_size/32 (3 by default), heads = 32*width/head_width; text tower width 32."""
    return dict(embed_dim=embed_dim, text_cfg=dict(width=32, heads=2, layers=2),
                vision_cfg=dict(layers=[1, 1, 1, 1], width=width, image_size=image_size, head_width=head_width))


def read_region_prompt(path: str, visual: nn.Module) -> dict:
    """CORA region prompt file -> ``{'attnpool.<name>': tensor}`` checked against ``visual`` (a ModifiedResNet).

    The file is a plain dict of tensors saved by CORA's ``export_rp.py`` (keys ``attnpool.positional_embedding``;
    a ``visual.`` prefix is also accepted), read with ``torch.load(weights_only=True)`` and its default globals
    only (tensors and dicts need nothing more).  Only ``attnpool`` entries are allowed; each must exist in the
    model with the same shape (an RN50 prompt for an RN50x4 model is an error naming the file).
    """
    sd, _ = read_checkpoint(path)
    own = visual.state_dict()
    out = {}
    for k, v in sd.items():
        name = k[len('visual.'):] if k.startswith('visual.') else k
        if not name.startswith('attnpool.') or name not in own:
            raise CheckpointError(f'region prompt {path!r}: unexpected key {k!r} (a region prompt only holds '
                                  f'attnpool entries such as "attnpool.positional_embedding")')
        if own[name].shape != v.shape:
            raise CheckpointError(
                f'region prompt {path!r}: "{k}" has shape {tuple(v.shape)} but the model expects '
                f'{tuple(own[name].shape)} (a prompt for another CLIP, e.g. region_prompt_R50.pth for RN50x4?)')
        out[name] = v
    if not out:
        raise CheckpointError(f'region prompt {path!r} is empty')
    return out


@register_everywhere(MODELS, DET_MODELS)
class CLIPResNet(BaseModule):
    """Frozen CLIP ModifiedResNet backbone (see the module docstring).

    Args:
        model_name: open_clip ResNet config name, ``RN50`` or ``RN50x4`` (others of ``RESNET_MODELS`` also build).
        model_overrides: dict deep-merged into the open_clip config (``tiny_resnet_overrides()`` for tests).
        checkpoint: local CLIP file (OpenAI TorchScript ``RN50.pt`` / open_clip state dict).  A missing file is
            deferred like ``DeCLIPViT``'s: a full detector checkpoint loaded later must provide the weights.
        region_prompt: local CORA region-prompt file merged into the checkpoint's ``attnpool`` (None: plain CLIP).
        out_indices: stages returned by ``forward`` (0..3 = layer1..layer4); default C3, C4, C5.

    Shapes: ``forward((B,3,H,W))`` -> tuple with one map per out index: C2 (B, 4w, H/4, W/4), C3 (B, 8w, H/8, W/8),
    C4 (B, 16w, H/16, W/16), C5 (B, 32w, H/32, W/32) for the width w (64 RN50, 80 RN50x4); sizes are floored at
    every stride-2 pooling (any H, W works, as in the original's unpadded-to-a-multiple batches).
    """

    def __init__(self, model_name: str = 'RN50', model_overrides: Optional[dict] = None,
                 checkpoint: Optional[str] = None, region_prompt: Optional[str] = None,
                 out_indices: Sequence[int] = (1, 2, 3), init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        import open_clip
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.utils import freeze_batch_norm_2d
        cfg = open_clip.get_model_config(model_name)
        if cfg is None or not isinstance(cfg['vision_cfg'].get('layers'), (list, tuple)):
            raise ValueError(f'CLIPResNet needs an open_clip ResNet config ({", ".join(RESNET_MODELS)}), got '
                             f'{model_name!r}; ViT CLIPs go through DeCLIPViT')
        visual = build_clip_model(model_name, model_overrides, with_text=False).visual
        assert isinstance(visual, ModifiedResNet)
        out_indices = tuple(sorted(set(out_indices)))
        if not out_indices or any(i not in (0, 1, 2, 3) for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty subset of (0, 1, 2, 3) (layer1..layer4), '
                             f'got {out_indices}')
        self.visual = freeze_batch_norm_2d(visual)  # BatchNorm2d -> torchvision FrozenBatchNorm2d (same eps)
        self.model_name = model_name
        self.model_overrides = model_overrides
        self.out_indices = out_indices
        width = visual.conv1.out_channels * 2
        self.out_channels = tuple(width * 4 * 2 ** i for i in out_indices)
        self.strides = tuple(4 * 2 ** i for i in out_indices)
        self.checkpoint, self.region_prompt = checkpoint, region_prompt
        self._pending_checkpoint = None
        missing = [p for p in (checkpoint, region_prompt) if p and not osp.isfile(str(p))]
        if missing:  # a full model checkpoint must fill the weights (tools/test.py CKPT / load_from)
            defer_missing_checkpoint(self, missing[0])
        elif checkpoint:
            self.load_checkpoint(checkpoint, region_prompt)
        elif region_prompt:
            raise ValueError('CLIPResNet: region_prompt needs the CLIP checkpoint it was trained on (checkpoint=...)')
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    # ------------------------------------------------------------------ weights
    def load_checkpoint(self, path: str, region_prompt: Optional[str] = None) -> None:
        """Strict load of ``path``'s ``visual.*`` weights, with the region prompt's entries replacing theirs."""
        sd, _ = load_clip_state_dict(path, VisualOnly(self.visual))
        sd = {k: v for k, v in sd.items() if k.startswith('visual.') and not k.endswith('.num_batches_tracked')}
        if not any(k.startswith('visual.layer4.') for k in sd):
            raise CheckpointError(f'{path!r} holds no CLIP ResNet image tower (no visual.layer4.* weights): a ViT '
                                  'CLIP or a text-only file?')
        if region_prompt:
            sd.update({'visual.' + k: v for k, v in read_region_prompt(region_prompt, self.visual).items()})
        missing, unexpected = load_into(self.visual, sd, 'visual.', f'CLIPResNet[{self.model_name}]')
        if unexpected:
            raise CheckpointError(f'{path!r} does not fit CLIPResNet[{self.model_name}]: unexpected weights '
                                  f'{["visual." + k for k in unexpected[:8]]}')
        print_log(f'CLIPResNet[{self.model_name}] loaded {path}' +
                  (f' with the region prompt {region_prompt}' if region_prompt else ''), logger='current')

    def init_weights(self):
        # CLIP weights come from `checkpoint` in __init__; never re-initialise them (training needs the file).
        check_weights_loaded(self)
        self._is_init = True

    def train(self, mode: bool = True):
        super().train(False)  # frozen: eval mode always
        return self

    # ------------------------------------------------------------------ parts used by the region features
    @property
    def layer4(self) -> nn.Module:
        """res5: (K, 16w, 2g, 2g) RoI maps from C4 -> (K, 32w, g, g)."""
        return self.visual.layer4

    @property
    def attnpool(self) -> nn.Module:
        """CLIP's attention pool (q/k/v/c_proj, positional_embedding (g*g+1, 32w), num_heads)."""
        return self.visual.attnpool

    @property
    def grid_size(self) -> int:
        """g: the attnpool's native grid (7 RN50, 9 RN50x4) = RoI side of the C5 path; the C4 path uses 2g."""
        return int(round((self.visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5))

    @property
    def embed_dim(self) -> int:
        """CLIP embedding width (1024 RN50, 640 RN50x4)."""
        return self.visual.attnpool.c_proj.out_features

    # ------------------------------------------------------------------ forward
    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B,3,H,W) CLIP-normalised images -> tuple of stage maps for ``out_indices`` (see the class docstring)."""
        check_weights_loaded(self)
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'CLIPResNet expects (B,3,H,W) images, got shape {tuple(img.shape)}')
        with torch.no_grad():
            out = self.visual.forward_intermediates(
                img, indices=[i + 1 for i in self.out_indices], intermediates_only=True)  # 0 = stem
        return tuple(out['image_intermediates'])
