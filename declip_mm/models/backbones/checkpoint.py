"""Reading CLIP / DeCLIP checkpoints into open_clip naming, and exporting DeCLIPViT backbones.

Accepted files (read with ``torch.load(weights_only=True)``):

* open_clip state dicts: OpenAI-style (``visual.conv1.weight``, packed ``attn.in_proj_weight``) or EVA02 through
  timm (``visual.trunk.*``);
* the original EVA-CLIP release files (``EVA02_CLIP_B_psz16_s8B.pt``; ``visual.blocks.i.attn.q_proj.weight``,
  ``q_bias``, ``inner_attn_ln``, ``mlp.w1/w2/w3``, ``text.*``): converted with timm's own
  ``eva.checkpoint_filter_fn``;
* DeCLIP / CLIPSelf training files (``epoch_k.pt``: the full CLIP in EVA naming under ``state_dict`` / ``model`` /
  ``module``, possibly with ``module.`` prefixes, text tower included);
* our exported backbones (``{'state_dict': visual.*, 'meta': {'declip_mm': {...}}}``), which record the dense mode.

Everything is normalised to the key names of an open_clip model (``visual.*`` plus the text tower's names).
"""
import os
import warnings
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

ROPE_KEY_HINTS = ('rope.freqs', 'rope.pos_embed', 'rope.bands')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


def read_checkpoint(path: str, wrapper_keys=('state_dict', 'model', 'module')
                    ) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Load a checkpoint file -> (flat state dict with wrappers and ``module.`` removed, declip_mm meta or {}).

    ``.safetensors`` files are read with safetensors; everything else with ``torch.load(weights_only=True)``.
    Nested wrappers named in ``wrapper_keys`` are unwrapped (e.g. DINO's ``teacher``).
    """
    if not path or not os.path.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint file not found: {path!r} (weights are only read from local '
                                      'files: download them once and point the config at the file)')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            obj = load_file(path)
        else:
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated zip, pickle with code objects, TorchScript archive, ...
        raise CheckpointError(
            f'could not read checkpoint {path!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). The file is '
            'truncated/corrupt, or not a plain state dict (OpenAI TorchScript archives must first be converted to a '
            'state dict, e.g. with open_clip.load_checkpoint + torch.save(model.state_dict())).') from e
    meta = {}
    if isinstance(obj, dict) and isinstance(obj.get('meta'), dict):
        meta = obj['meta'].get('declip_mm', {})
    unwrapped = True
    while unwrapped and isinstance(obj, dict):
        unwrapped = False
        for key in wrapper_keys:
            if isinstance(obj.get(key), dict):
                obj, unwrapped = obj[key], True
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'{path!r} does not contain a state dict of tensors')
    sd = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in obj.items()}
    return sd, meta


def detect_format(sd: Dict[str, torch.Tensor]) -> str:
    """'openclip_eva' | 'eva_release' | 'openclip_vit' (keys prefixed with ``visual.``)."""
    keys = sd.keys()
    if any(k.startswith('visual.trunk.') for k in keys):
        return 'openclip_eva'
    if any(k.startswith(('visual.blocks.', 'visual.patch_embed.')) for k in keys):
        return 'eva_release'
    if any(k.startswith(('visual.conv1.', 'visual.transformer.')) for k in keys):
        return 'openclip_vit'
    raise CheckpointError(
        'unrecognised checkpoint layout: expected open_clip (visual.conv1 / visual.trunk), EVA-CLIP release '
        f'(visual.blocks / visual.patch_embed) or a declip_mm export; first keys: {list(keys)[:5]}')


def _add_visual_prefix(sd):
    """Visual-only state dicts without the ``visual.`` prefix (e.g. a bare timm EVA or open_clip tower)."""
    if any(k.startswith('visual.') for k in sd):
        return sd
    if any(k.startswith(('trunk.', 'conv1.', 'transformer.resblocks.')) for k in sd):
        return {'visual.' + k: v for k, v in sd.items()}
    if any(k.startswith(('blocks.', 'patch_embed.')) for k in sd):
        return {'visual.' + k: v for k, v in sd.items()}
    return sd


def to_openclip_keys(sd: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Convert a checkpoint of any accepted layout to the key names of ``model`` (an open_clip CLIP).

    EVA-release visual keys go through timm's ``checkpoint_filter_fn``; RoPE buffers are dropped;
    packed / split OpenAI q,k,v weights are converted to whatever ``model`` uses.
    """
    sd = _add_visual_prefix(sd)
    fmt = detect_format(sd)
    if fmt == 'eva_release':
        from timm.models.eva import checkpoint_filter_fn
        if not hasattr(model.visual, 'trunk'):
            raise CheckpointError('checkpoint is an EVA-CLIP (EVA02) file but the model is an OpenAI-style ViT; '
                                  'use an EVA02-* model_name')
        visual = {k: v for k, v in sd.items() if k.startswith('visual.')}
        if 'visual.pos_embed' not in visual:
            raise CheckpointError('EVA-CLIP checkpoint lacks visual.pos_embed')
        converted = checkpoint_filter_fn(visual, model.visual.trunk)
        out = {'visual.trunk.' + k: v for k, v in converted.items()}
        text_keys = {k for k in model.state_dict() if not k.startswith('visual.')}
        for k, v in sd.items():
            if k.startswith('visual.'):
                continue
            # EVA-CLIP stores the text tower under ``text.``; open_clip's CLIP (non custom-text) has it top-level.
            if k in text_keys:
                out[k] = v
            elif k.startswith('text.') and k[len('text.'):] in text_keys:
                out[k[len('text.'):]] = v
            else:
                out[k] = v
        sd = out
    elif fmt == 'openclip_eva' and not hasattr(model.visual, 'trunk'):
        raise CheckpointError('checkpoint is an EVA02 (timm) open_clip file but the model is an OpenAI-style ViT')
    elif fmt == 'openclip_vit' and hasattr(model.visual, 'trunk'):
        raise CheckpointError('checkpoint is an OpenAI-style ViT but the model is EVA02; use a ViT-* model_name')
    sd = {k: v for k, v in sd.items() if not any(h in k for h in ROPE_KEY_HINTS)}
    return _match_qkv_layout(sd, model.state_dict())


def _match_qkv_layout(sd, target):
    out = dict(sd)
    for k in list(sd):
        if k.endswith('attn.in_proj_weight'):
            base = k[:-len('in_proj_weight')]
            if k not in target and base + 'q_proj_weight' in target:
                q, kk, v = out.pop(k).chunk(3)
                out[base + 'q_proj_weight'], out[base + 'k_proj_weight'], out[base + 'v_proj_weight'] = q, kk, v
        elif k.endswith('attn.q_proj_weight'):
            base = k[:-len('q_proj_weight')]
            if k not in target and base + 'in_proj_weight' in target:
                out[base + 'in_proj_weight'] = torch.cat(
                    [out.pop(base + 'q_proj_weight'), out.pop(base + 'k_proj_weight'), out.pop(base + 'v_proj_weight')])
    return out


def load_into(module: nn.Module, sd: Dict[str, torch.Tensor], prefix: str, model_name: str,
              logger=None, strict_missing: bool = True) -> Tuple[list, list]:
    """Load the ``prefix``-ed entries of ``sd`` into ``module`` with shape checks and named key reports.

    Raises ``CheckpointError`` for a shape mismatch (different architecture / width) or, if ``strict_missing``,
    for weights missing from the checkpoint.  Unexpected keys (under ``prefix``) are reported as a warning.
    Returns (missing, unexpected) key names.
    """
    own = module.state_dict()
    picked = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not picked:
        raise CheckpointError(f'checkpoint has no "{prefix}*" weights for {model_name}')
    for k, v in picked.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(
                f'checkpoint does not fit {model_name}: "{prefix}{k}" has shape {tuple(v.shape)} but the model '
                f'expects {tuple(own[k].shape)} (wrong architecture or width: e.g. a ViT-L file for a ViT-B model)')
    missing = sorted(k for k in own if k not in picked and not any(h in k for h in ROPE_KEY_HINTS))
    unexpected = sorted(k for k in picked if k not in own)
    if missing and strict_missing:
        raise CheckpointError(f'checkpoint is missing {len(missing)} weights of {model_name}: '
                              f'{[prefix + k for k in missing[:12]]}{" ..." if len(missing) > 12 else ""}')
    if unexpected:
        msg = (f'{len(unexpected)} unexpected checkpoint keys ignored for {model_name}: '
               f'{[prefix + k for k in unexpected[:12]]}{" ..." if len(unexpected) > 12 else ""}')
        (logger.warning if logger else warnings.warn)(msg)
    module.load_state_dict({k: v for k, v in picked.items() if k in own}, strict=False)
    return missing, unexpected


def load_clip_state_dict(path: str, model: nn.Module) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read ``path`` and return (state dict in ``model``'s open_clip key names, declip_mm meta)."""
    sd, meta = read_checkpoint(path)
    return to_openclip_keys(sd, model), meta


def _plain(obj):
    """Nested dict / list / tuple (ConfigDict included) -> builtin containers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj] if isinstance(obj, list) else tuple(_plain(v) for v in obj)
    return obj


def export_backbone(backbone: nn.Module, path: str, meta: Optional[dict] = None) -> str:
    """Save a DeCLIPViT's visual tower as a standalone checkpoint that ``DeCLIPViT(checkpoint=path)`` loads.

    The file is ``{'state_dict': {'visual.*': tensor}, 'meta': {'declip_mm': {...}}}``; the meta records
    ``model_name``, ``model_overrides``, ``dense_mode`` and ``attn_scale`` so a mode mismatch can be warned about.
    """
    info = dict(model_name=backbone.model_name, model_overrides=backbone.model_overrides,
                dense_mode=backbone.dense_mode, attn_scale=backbone.attn_scale_name, family=backbone.family)
    info.update(meta or {})
    info = _plain(info)  # ConfigDicts from configs would not load under weights_only=True
    sd = {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items() if k.startswith('visual.')}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    torch.save({'state_dict': sd, 'meta': {'declip_mm': info}}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    return path
