"""CLIP region embeddings of boxes on a frozen CLIP backbone (OV-DQUO / CORA-style CLIP classification of boxes).

Every extractor here has one call signature, shared with the ViT counterpart (1x1 RoIAlign on the dense CLIP map)::

    extractor(backbone, feats, boxes, padding_mask=None) -> Tensor (K, D), K = sum_i n_i, rows L2-normalised

* ``backbone``: the CLIP backbone that produced ``feats`` (the ResNet paths use its ``layer4`` / ``attnpool``);
* ``feats``: the backbone's output tuple; the extractor picks its map with ``in_index``;
* ``boxes``: list with one (n_i, 4) tensor per image: normalised (cx, cy, w, h) in [0, 1] of the image's *unpadded*
  size (DETR convention; ``box_format='xyxy'`` for normalised corners);
* ``padding_mask``: (B, H, W) bool at the padded input size, True on padding (None: no image is padded).
  mmdet's metas give it through :func:`padding_mask_from_metas`.

Box -> map cells, as OV-DQUO (models/transformer/base.py:372-375 via ov_deformable_transformer.py:193): the padding
mask is nearest-downsampled to the map (``F.interpolate``), the valid cell counts are read from its first row (w) and
first column (h), and normalised coordinates are multiplied by them (a 683-px side at stride 16 gives 43 cells, not
42.7).  RoIAlign is mmcv's (``aligned=True``, adaptive sampling, spatial_scale 1) through ``models.utils.roi_pool``.

ResNet paths (``CLIPResNet``, attnpool grid g = 7 RN50 / 9 RN50x4):

* :class:`ResNetC5RegionEmbed` (query assignment, C5): the attnpool's q/k/v projections (with bias) are applied at
  every C5 cell, then RoIAligned to g x g; q = mean over the cells + W_q pe[0], k = cells + W_k pe[1:], v likewise
  (pe = attnpool positional embedding, no bias on the pe terms); one query, multi-head attention with scale
  head_dim^-1/2 over the g*g cells, heads concatenated, ``c_proj``; L2 norm.  This is the original's *approximate*
  attention pool: **no mean token among the keys** (CLIP's attnpool also attends to it).  ``exact_attnpool=True``
  instead runs the real attnpool on the RoIAligned C5 (g x g).
* :class:`ResNetC4RegionEmbed` (scoring of final boxes, C4): RoIAlign 2g x 2g (14 RN50 / 18 RN50x4) -> frozen res5
  (``layer4``) -> attnpool (with the region prompt if loaded) -> L2 norm.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere
from ..utils import roi_pool


def padding_mask_from_metas(batch_img_metas: Sequence[dict], device=None) -> Optional[torch.Tensor]:
    """(B, H, W) bool padding mask (True outside each ``img_shape``) at ``batch_input_shape``; None if no image is
    padded (as mmdet's ``DeformableDETR.pre_transformer``)."""
    H, W = batch_img_metas[0]['batch_input_shape']
    shapes = [m['img_shape'][:2] for m in batch_img_metas]
    if all(tuple(s) == (H, W) for s in shapes):
        return None
    mask = torch.ones(len(shapes), H, W, dtype=torch.bool, device=device)
    for i, (h, w) in enumerate(shapes):
        mask[i, :h, :w] = False
    return mask


def valid_cells(padding_mask: Optional[torch.Tensor], feat_shape: Sequence[int]) -> torch.Tensor:
    """Valid (w, h) cell counts per image of a (B, C, h, w) map: (B, 2) float.

    The padding mask is nearest-downsampled to the map and counted along its first row / first column, as the
    original does; None (no padding) gives the full map size."""
    B, _, h, w = feat_shape
    if padding_mask is None:
        return torch.tensor([[float(w), float(h)]]).expand(B, 2)
    if padding_mask.dim() != 3 or padding_mask.shape[0] != B:
        raise ValueError(f'padding_mask must be (B, H, W) with B = {B}, got {tuple(padding_mask.shape)}')
    m = F.interpolate(padding_mask[None].float(), size=(h, w))[0].to(torch.bool)
    return torch.stack([(~m[:, 0, :]).sum(-1), (~m[:, :, 0]).sum(-1)], dim=-1).float()


def boxes_to_cell_rois(boxes: Sequence[torch.Tensor], cells: torch.Tensor, box_format: str = 'cxcywh'
                       ) -> torch.Tensor:
    """Per-image normalised boxes -> (K, 5) RoIs ``[batch_idx, x1, y1, x2, y2]`` in map cells."""
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    if box_format not in ('cxcywh', 'xyxy'):
        raise ValueError(f"box_format must be 'cxcywh' or 'xyxy', got {box_format!r}")
    if len(boxes) != len(cells):
        raise ValueError(f'{len(boxes)} box tensors for a batch of {len(cells)} images')
    rois = []
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[-1] != 4:
            raise ValueError(f'boxes[{i}] must be (n, 4), got {tuple(b.shape)}')
        xyxy = bbox_cxcywh_to_xyxy(b) if box_format == 'cxcywh' else b
        scale = cells[i].to(b).repeat(2)  # (w, h, w, h)
        rois.append(torch.cat([b.new_full((len(b), 1), float(i)), xyxy * scale], dim=1))
    return torch.cat(rois, dim=0)


def attnpool_c5_region_embed(c5: torch.Tensor, rois: torch.Tensor, attnpool: nn.Module,
                             exact_attnpool: bool = False) -> torch.Tensor:
    """C5 (B, C, h, w) + RoIs (K, 5) in cells -> (K, D) L2-normalised region embeddings (see the module docstring).

    OV-DQUO models/transformer/base.py:417-487 (``sample_feature_rn``, ``extra_conv=False``); the attention is
    models/transformer/attention.py:411-443 with q (K, C, 1), k/v (K, C, g*g)."""
    pe = attnpool.positional_embedding
    g = int(round((pe.shape[0] - 1) ** 0.5))
    if len(rois) == 0:
        return c5.new_zeros(0, attnpool.c_proj.out_features)
    if exact_attnpool:
        return F.normalize(attnpool(roi_pool(c5, rois, 1.0, output_size=g)), dim=-1)
    C = c5.shape[1]
    x = c5.permute(0, 2, 3, 1)
    qkv = torch.cat([attnpool.q_proj(x), attnpool.k_proj(x), attnpool.v_proj(x)], dim=-1).permute(0, 3, 1, 2)
    q, k, v = roi_pool(qkv, rois, 1.0, output_size=g).flatten(2).split(C, dim=1)  # (K, C, g*g) each
    q = q.mean(-1) + F.linear(pe[:1], attnpool.q_proj.weight)  # (K, C)
    k = k.transpose(1, 2) + F.linear(pe[1:], attnpool.k_proj.weight)  # (K, g*g, C)
    v = v.transpose(1, 2) + F.linear(pe[1:], attnpool.v_proj.weight)
    K, h = q.shape[0], attnpool.num_heads
    q = q.reshape(K, h, 1, C // h)
    k, v = (t.reshape(K, g * g, h, C // h).transpose(1, 2) for t in (k, v))
    out = F.scaled_dot_product_attention(q, k, v).reshape(K, C)  # scale (C/h)^-1/2
    return F.normalize(attnpool.c_proj(out), dim=-1)


def res5_c4_region_embed(c4: torch.Tensor, rois: torch.Tensor, layer4: nn.Module, attnpool: nn.Module,
                         chunk_size: int = 256) -> torch.Tensor:
    """C4 (B, C, h, w) + RoIs (K, 5) in cells -> (K, D): RoIAlign 2g x 2g -> res5 -> attnpool -> L2 norm.

    OV-DQUO models/transformer/base.py:406-415,487 (``sample_feature_rn``, ``extra_conv=True``).  RoIs go through
    res5 in chunks of ``chunk_size`` (memory only; the result does not depend on it)."""
    g = int(round((attnpool.positional_embedding.shape[0] - 1) ** 0.5))
    outs = [attnpool(layer4(roi_pool(c4, part, 1.0, output_size=2 * g))) for part in rois.split(chunk_size)]
    if not outs:
        return c4.new_zeros(0, attnpool.c_proj.out_features)
    return F.normalize(torch.cat(outs), dim=-1)


class _RegionEmbed(nn.Module):
    """Base of the CLIP region extractors: no parameters (they use the frozen backbone's)."""

    def __init__(self, in_index: int, box_format: str = 'cxcywh'):
        super().__init__()
        self.in_index = in_index
        self.box_format = box_format

    def rois(self, feat: torch.Tensor, boxes: Sequence[torch.Tensor],
             padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        return boxes_to_cell_rois(boxes, valid_cells(padding_mask, feat.shape), self.box_format)

    def forward(self, backbone: nn.Module, feats: Sequence[torch.Tensor], boxes: List[torch.Tensor],
                padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(K, D) embeddings in the CLIP weights' dtype: under AMP the map is cast back to the (float32) weights
        and autocast is off here (mmcv's RoIAlign has no bfloat16 kernel; the original also returns float32)."""
        dtype = backbone.attnpool.c_proj.weight.dtype
        feat = feats[self.in_index].to(dtype)
        with torch.no_grad(), torch.autocast(feat.device.type, enabled=False):
            return self.embed(backbone, feat, self.rois(feat, [b.to(dtype) for b in boxes], padding_mask))

    def embed(self, backbone, feat, rois):
        raise NotImplementedError


@register_everywhere(MODELS, DET_MODELS)
class ResNetC5RegionEmbed(_RegionEmbed):
    """Query-assignment region embeddings on C5 (approximate attnpool by default; see the module docstring).

    Args:
        in_index: position of C5 in the backbone outputs (-1 for ``CLIPResNet(out_indices=(1, 2, 3))``).
        exact_attnpool: run CLIP's real attnpool (mean token included) on the RoIAligned C5 instead of the
            original's approximation.
        box_format: 'cxcywh' (default) or 'xyxy', normalised.
    """

    def __init__(self, in_index: int = -1, exact_attnpool: bool = False, box_format: str = 'cxcywh'):
        super().__init__(in_index, box_format)
        self.exact_attnpool = exact_attnpool

    def embed(self, backbone, feat, rois):
        return attnpool_c5_region_embed(feat, rois, backbone.attnpool, self.exact_attnpool)


@register_everywhere(MODELS, DET_MODELS)
class ResNetC4RegionEmbed(_RegionEmbed):
    """Scoring region embeddings on C4: RoIAlign 2g x 2g -> res5 -> attnpool (CORA's path).

    Args:
        in_index: position of C4 in the backbone outputs (-2 for ``CLIPResNet(out_indices=(1, 2, 3))``).
        chunk_size: RoIs per res5 call (memory only).
        box_format: 'cxcywh' (default) or 'xyxy', normalised.
    """

    def __init__(self, in_index: int = -2, chunk_size: int = 256, box_format: str = 'cxcywh'):
        super().__init__(in_index, box_format)
        self.chunk_size = chunk_size

    def embed(self, backbone, feat, rois):
        return res5_c4_region_embed(feat, rois, backbone.layer4, backbone.attnpool, self.chunk_size)
