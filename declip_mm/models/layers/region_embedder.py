"""CLIP region embeddings of boxes for open-vocabulary DETRs (OV-DQUO): the pluggable "CLIP region classifier".

A region embedder maps normalised boxes to L2-normalised CLIP embeddings, read from the frozen backbone's CLIP
outputs.  OV-DQUO calls it twice: on the encoder's top-k proposals (to give each query a class text embedding) and,
at test time, on the final boxes (the class score is CLIP alone).  :class:`ViTRegionEmbedder` pools the dense CLIP map
for both; :class:`ResNetRegionEmbedder` (CLIP ResNet, OV-COCO RN50 / RN50x4) uses the approximate attention pool on C5
for proposals and C4 -> res5 -> attention pool for final boxes.
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


@register_everywhere(DET_MODELS, MODELS)
class ResNetRegionEmbedder(BaseModule):
    """Region embeddings from a frozen ``CLIPResNet``: proposals on C5, final boxes on C4 (OV-DQUO's ResNet path).

    * ``proposal_embeddings`` (query assignment): ``proposal_extractor`` = ``ResNetC5RegionEmbed`` (the original's
      approximate attention pool on C5, no mean token; OV-DQUO models/transformer/ov_deformable_transformer.py:184,
      base.py:417-487);
    * ``box_embeddings`` (test scores): ``box_extractor`` = ``ResNetC4RegionEmbed`` (RoIAlign 2g x 2g on C4 ->
      res5 -> region-prompted attention pool; OV-DQUO models/ov_dquo/ov_dquo.py:352-360).

    Both read ``clip_feats['maps']`` = the backbone's outputs (C3, C4, C5) and the backbone's ``layer4`` /
    ``attnpool``; the detector hands the backbone over once with :meth:`bind` (kept as a plain reference, so its
    weights are not listed twice in the state dict).  Boxes: normalised (cx, cy, w, h) of each unpadded image; the
    padding mask (True outside ``img_shape`` inside ``batch_input_shape``) maps them to valid cells as the original.

    Shapes: boxes (B, N, 4) -> (B, N, D), D = the CLIP embedding width (1024 RN50, 640 RN50x4), rows L2-normalised.
    """

    def __init__(self, proposal_extractor: dict = dict(type='ResNetC5RegionEmbed', in_index=-1),
                 box_extractor: dict = dict(type='ResNetC4RegionEmbed', in_index=-2), clip_key: str = 'maps',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.proposal_extractor = MODELS.build(proposal_extractor)
        self.box_extractor = MODELS.build(box_extractor)
        self.clip_key = clip_key
        self._backbone = ()  # a tuple: not registered as a submodule

    def bind(self, backbone) -> None:
        """The CLIP ResNet whose ``layer4`` / ``attnpool`` the extractors use (``OVDQUO`` calls this)."""
        for name in ('layer4', 'attnpool'):
            if not hasattr(backbone, name):
                raise TypeError(f'ResNetRegionEmbedder needs a CLIP ResNet backbone (with {name}), got '
                                f'{type(backbone).__name__}')
        self._backbone = (backbone, )

    def _embed(self, extractor, clip_feats, boxes, img_shapes, batch_input_shape) -> Tensor:
        from declip_mm.models.roi_heads.clip_region_features import padding_mask_from_metas
        if not self._backbone:
            raise RuntimeError('ResNetRegionEmbedder: no backbone bound (call bind(backbone))')
        feats = clip_feats[self.clip_key]
        B, N = boxes.shape[:2]
        mask = padding_mask_from_metas([dict(img_shape=tuple(s)[:2], batch_input_shape=tuple(batch_input_shape))
                                        for s in img_shapes], device=boxes.device)
        emb = extractor(self._backbone[0], feats, list(boxes), mask)
        return emb.view(B, N, -1)

    def proposal_embeddings(self, clip_feats, boxes, img_shapes, batch_input_shape) -> Tensor:
        """C5 approximate attention pool of the encoder's proposals (text-query assignment)."""
        return self._embed(self.proposal_extractor, clip_feats, boxes, img_shapes, batch_input_shape)

    def box_embeddings(self, clip_feats, boxes, img_shapes, batch_input_shape) -> Tensor:
        """C4 -> res5 -> attention pool of the final boxes (test-time class scores)."""
        return self._embed(self.box_extractor, clip_feats, boxes, img_shapes, batch_input_shape)

    forward = box_embeddings
