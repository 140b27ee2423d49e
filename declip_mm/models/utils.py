"""Region pooling on dense CLIP maps: RoIAlign (mmcv.ops, CUDA or CPU kernels) and mask pooling."""
import torch
import torch.nn.functional as F


def roi_pool(dense: torch.Tensor, rois: torch.Tensor, spatial_scale: float, output_size: int = 1,
             sampling_ratio: int = -1, aligned: bool = True) -> torch.Tensor:
    """RoIAlign of a dense map.

    Args:
        dense: (B, D, H, W) feature map.
        rois: (K, 5) ``[batch_index, x1, y1, x2, y2]`` in input-image coordinates (or a list of (n_b, 4) boxes,
            one per image).
        spatial_scale: map cells per image pixel (1 / patch size for a ViT map; 1.0 for normalised-to-map boxes).
    Returns:
        (K, D) for ``output_size == 1``, else (K, D, S, S).
    """
    from mmcv.ops import roi_align
    if isinstance(rois, (list, tuple)):
        rois = torch.cat([torch.cat([b.new_full((len(b), 1), float(i)), b[:, :4]], dim=1)
                          for i, b in enumerate(rois)], dim=0)
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f'rois must be (K, 5) [batch_idx, x1, y1, x2, y2], got {tuple(rois.shape)}')
    if rois.numel() == 0:
        shape = (0, dense.shape[1]) if output_size == 1 else (0, dense.shape[1], output_size, output_size)
        return dense.new_zeros(shape)
    # mmcv's CPU kernel silently reads non-contiguous inputs wrongly (DeCLIPViT's dense map is a transposed view)
    out = roi_align(dense.contiguous(), rois.to(dense.dtype).contiguous(), (output_size, output_size), spatial_scale,
                    sampling_ratio, 'avg', aligned)
    return out.flatten(1) if output_size == 1 else out


def mask_pool(dense: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Average of a dense map inside masks.

    Args:
        dense: (B, D, H, W).
        masks: (B, M, h, w) bool or float; resized (bilinear) to (H, W) when the sizes differ.
    Returns:
        (B, M, D).  An empty mask gives a zero vector.
    """
    m = masks.to(dense.dtype)
    if m.shape[-2:] != dense.shape[-2:]:
        m = F.interpolate(m, size=dense.shape[-2:], mode='bilinear', align_corners=False)
    num = torch.einsum('bmhw,bdhw->bmd', m, dense)
    return num / m.sum(dim=(-2, -1)).clamp_min(eps)[..., None]


def checked_options(name: str, options, required=(), optional=()):
    """``dict(options)`` (None / empty -> None) after checking its keys against ``required`` + ``optional``.

    A dict-style module option (``slide_cfg``, ``background_collapse``, ...) with an unknown key is an error naming
    it, so that a typo in a config cannot silently run with the default; a missing required key likewise.
    """
    if not options:
        return None
    options = dict(options)
    unknown = sorted(set(options) - set(required) - set(optional))
    missing = [k for k in required if k not in options]
    if unknown or missing:
        raise ValueError(f'{name}: ' + (f'unknown key(s) {unknown}' if unknown else '') +
                         ('; ' if unknown and missing else '') + (f'missing key(s) {missing}' if missing else '') +
                         f' (accepted: required {list(required)}, optional {list(optional)})')
    return options


def text_encoder_from_backbone_file(text_encoder, backbone):
    """The text-encoder config with ``checkpoint`` defaulting to the backbone's: one CLIP / DeCLIP file holds both
    towers, so ``--cfg-options model.backbone.checkpoint=...`` reaches the text tower too.  An explicit
    ``text_encoder.checkpoint`` is kept."""
    if isinstance(text_encoder, dict) and 'checkpoint' not in text_encoder and isinstance(backbone, dict) \
            and backbone.get('checkpoint'):
        text_encoder = {**text_encoder, 'checkpoint': backbone['checkpoint']}
    return text_encoder
