"""F-ViT RoI head: StandardRoIHead whose test path ensembles detector and CLIP region scores."""
from typing import List, Optional, Tuple

import torch.nn.functional as F
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.utils import empty_instances
from mmdet.structures.bbox import bbox2roi
from torch import Tensor

from declip_mm.models.utils import roi_pool
from declip_mm.registry import DET_MODELS, MODELS, register_everywhere


def pool_clip_embeddings(vlm_feat: Tensor, rois: Tensor, spatial_scale: float) -> Tensor:
    """1x1 RoIAlign (sampling_ratio 0, aligned) of the dense CLIP map (B, D, h, w) on rois (N, 5) -> (N, D),
    L2-normalised."""
    pooled = roi_pool(vlm_feat.float(), rois.float(), spatial_scale, output_size=1, sampling_ratio=0)
    return F.normalize(pooled, dim=-1)


@register_everywhere(DET_MODELS, MODELS)
class FViTRoIHead(StandardRoIHead):
    """Training is the stock StandardRoIHead.  ``predict(..., vlm_feat=(B, D, h, w), vlm_scale=1/stride)``
    pools the CLIP map on the **RPN proposals** (the RoIs fed to the box head, not the regressed boxes) and
    passes ensembled scores (:meth:`FViTBBoxHead.ensemble_scores`) to the box head's post-processing; without
    ``vlm_feat`` it uses ``softmax(T_det cos)`` only."""

    def predict(self, x: Tuple[Tensor], rpn_results_list, batch_data_samples, rescale: bool = False,
                vlm_feat: Optional[Tensor] = None, vlm_scale: Optional[float] = None):
        assert self.with_bbox, 'Bbox head must be implemented.'
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        bbox_rescale = rescale if not self.with_mask else False
        results_list = self.predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg=self.test_cfg,
                                         rescale=bbox_rescale, vlm_feat=vlm_feat, vlm_scale=vlm_scale)
        if self.with_mask:
            results_list = self.predict_mask(x, batch_img_metas, results_list, rescale=rescale)
        return results_list

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict], rpn_results_list, rcnn_test_cfg,
                     rescale: bool = False, vlm_feat: Optional[Tensor] = None, vlm_scale: Optional[float] = None):
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:
            return empty_instances(batch_img_metas, rois.device, task_type='bbox',
                                   box_type=self.bbox_head.predict_box_type, num_classes=self.bbox_head.num_classes,
                                   score_per_cls=rcnn_test_cfg is None)
        bbox_results = self._bbox_forward(x, rois)
        logits, bbox_preds = bbox_results['cls_score'], bbox_results['bbox_pred']
        if vlm_feat is not None:
            if vlm_scale is None:
                raise ValueError('vlm_scale (1 / stride of the dense CLIP map) is required with vlm_feat')
            clip_emb = pool_clip_embeddings(vlm_feat, rois, vlm_scale)
            scores = self.bbox_head.ensemble_scores(logits, clip_emb)
        else:
            scores = F.softmax(logits.float(), dim=-1)
        num = tuple(len(p) for p in proposals)
        rois = rois.split(num, 0)
        scores = scores.split(num, 0)
        bbox_preds = bbox_preds.split(num, 0) if bbox_preds is not None else (None,) * len(proposals)
        return self.bbox_head.predict_by_feat(rois=rois, cls_scores=scores, bbox_preds=bbox_preds,
                                              batch_img_metas=batch_img_metas, rcnn_test_cfg=rcnn_test_cfg,
                                              rescale=rescale)
