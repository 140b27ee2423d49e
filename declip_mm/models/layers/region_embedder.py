"""CLIP region embeddings of boxes for open-vocabulary DETRs (OV-DQUO): the pluggable "CLIP region classifier".

A region embedder maps normalised boxes to L2-normalised CLIP embeddings, read from the frozen backbone's CLIP
outputs.  OV-DQUO calls it twice: on the encoder's top-k proposals (to give each query a class text embedding) and,
at test time, on the final boxes (the class score is CLIP alone).  The ViT version below pools the dense CLIP map for
both; a ResNet version (attention-pool on C5 for proposals, C4 -> res5 -> attention pool for final boxes) implements
the same two methods on its own backbone outputs.
"""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere

from ..utils import roi_pool


def valid_cells(map_hw: Tuple[int, int], img_shapes: Sequence[Tuple[int, int]],
                batch_input_shape: Tuple[int, int], device=None) -> Tensor:
    """(B, 2) ``[valid columns, valid rows]`` of a (h, w) map for each image of a padded batch.

    The padding mask (True outside the image's ``img_shape`` inside ``batch_input_shape``) is nearest-resized to
    the map, as the DETR masks are, and the valid cells of its first row / column are counted: e.g. a 683-pixel side
    at stride 16 gives 43 cells, not 42.7.
    """
    H, W = batch_input_shape
    h, w = map_hw
    if all(tuple(s) == (H, W) for s in img_shapes):
        return torch.tensor([[w, h]] * len(img_shapes), dtype=torch.float32, device=device)
    mask = torch.ones((len(img_shapes), H, W), device=device)
    for i, (ih, iw) in enumerate(img_shapes):
        mask[i, :ih, :iw] = 0
    mask = F.interpolate(mask[None], size=(h, w)).to(torch.bool)[0]
    return torch.stack([(~mask[:, 0, :]).sum(1), (~mask[:, :, 0]).sum(1)], 1).float()


@register_everywhere(DET_MODELS, MODELS)
class ViTRegionEmbedder(BaseModule):
    """Region embeddings from a dense ViT CLIP map: 1x1 RoIAlign (aligned, adaptive sampling) + L2 norm.

    Boxes are normalised (cx, cy, w, h) relative to each image's valid (unpadded) area; they are scaled by the valid
    cell counts of the map (:func:`valid_cells`) and pooled at ``spatial_scale=1``.

    Args:
        clip_key: key of the dense map in the backbone's CLIP outputs.
    Shapes: ``clip_feats[clip_key]`` (B, D, h, w); boxes (B, N, 4) -> (B, N, D).
    """

    def __init__(self, clip_key: str = 'dense', init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.clip_key = clip_key

    def forward(self, clip_feats: Dict[str, Tensor], boxes: Tensor, img_shapes: Sequence[Tuple[int, int]],
                batch_input_shape: Tuple[int, int]) -> Tensor:
        dense = clip_feats[self.clip_key]
        B, N = boxes.shape[:2]
        sizes = valid_cells(dense.shape[-2:], img_shapes, batch_input_shape, dense.device).to(boxes.dtype)
        cx, cy, w, h = boxes.unbind(-1)
        xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
        xyxy = xyxy * sizes[:, None, :].repeat(1, 1, 2)
        emb = roi_pool(dense, list(xyxy.to(dense.dtype)), spatial_scale=1.0, output_size=1, aligned=True)
        return F.normalize(emb, dim=-1).view(B, N, -1)

    def proposal_embeddings(self, clip_feats, boxes, img_shapes, batch_input_shape) -> Tensor:
        """Embeddings of the encoder's proposals (text-query assignment)."""
        return self(clip_feats, boxes, img_shapes, batch_input_shape)

    def box_embeddings(self, clip_feats, boxes, img_shapes, batch_input_shape) -> Tensor:
        """Embeddings of the final boxes (test-time class scores)."""
        return self(clip_feats, boxes, img_shapes, batch_input_shape)
