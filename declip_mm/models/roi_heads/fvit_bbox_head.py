"""F-ViT box head: ConvFC head with a cosine text classifier and the F-VLM test-time ensemble."""
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.models.layers import multiclass_nms
from mmdet.models.utils import empty_instances
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmengine.structures import InstanceData
from torch import Tensor

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere
from .text_classifier import TextEmbeddingClassifier


@DET_MODELS.register_module(name='FViTDeferredPredictor')
class _DeferredPredictor(torch.nn.Identity):
    """Placeholder ``fc_cls`` while the stock heads initialise (replaced by the text classifier)."""


@register_everywhere(DET_MODELS, MODELS)
class FViTBBoxHead(ConvFCBBoxHead):
    """ConvFC box head of F-ViT: 4 shared 3x3 convs, 2 shared FCs, 1 cls FC (+ReLU) whose output is the region
    embedding (width ``fc_out_channels`` = text-embedding dim), 1 reg FC + class-agnostic box regression.

    Classification: ``T_det * cos(e, t)`` against fixed text embeddings (:class:`TextEmbeddingClassifier`, K
    classes + background last).  At test time, given CLIP region embeddings f (1x1 RoIAlign of the dense CLIP map
    on the proposals), :meth:`ensemble_scores` returns

        s_c = p_det,c^(1-a) * p_clip,c^a   (base classes and background),
        s_c = p_det,c^(1-b) * p_clip,c^b   (novel classes),

    with ``p_det = softmax(T_det cos(e,t))`` and ``p_clip = softmax(T_vlm cos(f,t))``; no renormalisation.

    Args:
        text_embeddings / class_names / logit_scale / learn_logit_scale: for the classifier.
        alpha, beta, vlm_temperature: ensemble exponents (base+bg, novel) and T_vlm.
        novel_classes: ``'zero_weight'`` (the zero-weight columns of ``loss_cls``), a list of names / preset /
            file (matched against ``class_names``), a list of int labels, or None (all classes use ``alpha``).
    """

    def __init__(self,
                 text_embeddings=None,
                 class_names: Union[None, str, Sequence[str]] = None,
                 logit_scale: float = 50.0,
                 learn_logit_scale: bool = True,
                 alpha: float = 0.1,
                 beta: float = 0.8,
                 vlm_temperature: float = 75.0,
                 novel_classes: Union[None, str, Sequence] = 'zero_weight',
                 num_shared_convs: int = 4,
                 num_shared_fcs: int = 2,
                 num_cls_fcs: int = 1,
                 num_reg_fcs: int = 1,
                 fc_out_channels: int = 512,
                 reg_class_agnostic: bool = True,
                 **kwargs) -> None:
        # BBoxHead and ConvFCBBoxHead each build ``fc_cls`` (the first with the wrong input width): build a
        # placeholder there and the text classifier once below.
        kwargs['cls_predictor_cfg'] = dict(type='FViTDeferredPredictor')
        if num_cls_fcs < 1:
            raise ValueError('FViTBBoxHead needs num_cls_fcs >= 1 (its output is the region embedding)')
        super().__init__(num_shared_convs=num_shared_convs, num_shared_fcs=num_shared_fcs,
                         num_cls_fcs=num_cls_fcs, num_reg_fcs=num_reg_fcs, fc_out_channels=fc_out_channels,
                         reg_class_agnostic=reg_class_agnostic, **kwargs)
        self.cls_predictor_cfg = dict(
            type='TextEmbeddingClassifier', text_embeddings=text_embeddings, class_names=class_names,
            logit_scale=logit_scale, learn_logit_scale=learn_logit_scale)
        self.fc_cls = TextEmbeddingClassifier(self.cls_last_dim, self.num_classes + 1, text_embeddings=text_embeddings,
                                              class_names=class_names, logit_scale=logit_scale,
                                              learn_logit_scale=learn_logit_scale)
        self.alpha, self.beta, self.vlm_temperature = float(alpha), float(beta), float(vlm_temperature)
        novel = self._novel_labels(novel_classes)
        exps = torch.full((self.num_classes + 1,), self.alpha)
        if len(novel):
            exps[torch.as_tensor(novel, dtype=torch.long)] = self.beta
        self.register_buffer('ensemble_exponent', exps, persistent=False)

    def _novel_labels(self, spec) -> list:
        if spec is None:
            return []
        if isinstance(spec, str) and spec == 'zero_weight':
            cols = getattr(self.loss_cls, 'zero_weight_columns', None)
            if cols is None:
                return []
            return [int(c) for c in cols if int(c) < self.num_classes]
        if isinstance(spec, (list, tuple)) and all(isinstance(s, int) for s in spec):
            bad = [s for s in spec if not 0 <= s < self.num_classes]
            if bad:
                raise ValueError(f'novel class labels out of range [0, {self.num_classes}): {bad[:5]}')
            return list(spec)
        from declip_mm.datasets.ov_detection import resolve_novel_names
        names = resolve_novel_names(spec)
        classes = self.fc_cls.class_names
        if classes is None:
            raise ValueError('novel_classes given by name needs class_names on the head')
        missing = [n for n in names if n not in classes]
        if missing:
            raise ValueError(f'novel classes not among class_names: {missing[:5]}')
        return [classes.index(n) for n in names]

    @property
    def text_classifier(self):
        return self.fc_cls

    def ensemble_scores(self, cls_logits: Tensor, clip_embeddings: Tensor) -> Tensor:
        """(N, K+1) detector logits + (N, D) CLIP region embeddings -> (N, K+1) ensembled scores."""
        p_det = F.softmax(cls_logits.float(), dim=-1)
        clip_logits = self.vlm_temperature * self.fc_cls.cosine(clip_embeddings.float())
        p_clip = F.softmax(clip_logits, dim=-1)
        return self.combine_probs(p_det, p_clip)

    def combine_probs(self, p_det: Tensor, p_clip: Tensor) -> Tensor:
        """Geometric ensemble of two (N, K+1) probability matrices with the per-class exponents."""
        a = self.ensemble_exponent.to(p_det)
        return p_det.pow(1 - a) * p_clip.pow(a)

    def _predict_by_feat_single(self, roi: Tensor, cls_score: Tensor, bbox_pred: Tensor, img_meta: dict,
                                rescale: bool = False, rcnn_test_cfg=None) -> InstanceData:
        """Like mmdet's, but ``cls_score`` already holds final per-class scores (N, K+1): no softmax here.

        Boxes are clipped to ``img_shape`` (the resized image, without padding) and, with ``rescale``, to
        ``ori_shape``; a box left with zero width or height (regressed off the image) is never emitted (its
        scores are zeroed before NMS; mmdet's R-CNN heads keep such boxes, its RPN drops them)."""
        results = InstanceData()
        if roi.shape[0] == 0:
            return empty_instances([img_meta], roi.device, task_type='bbox', instance_results=[results],
                                   box_type=self.predict_box_type, use_box_type=False,
                                   num_classes=self.num_classes, score_per_cls=rcnn_test_cfg is None)[0]
        scores = cls_score
        img_shape = img_meta['img_shape']
        num_rois = roi.size(0)
        if bbox_pred is not None:
            num_classes = 1 if self.reg_class_agnostic else self.num_classes
            roi = roi.repeat_interleave(num_classes, dim=0)
            bbox_pred = bbox_pred.view(-1, self.bbox_coder.encode_size)
            bboxes = self.bbox_coder.decode(roi[..., 1:], bbox_pred, max_shape=img_shape)
        else:
            bboxes = roi[:, 1:].clone()
        if rescale and bboxes.size(0) > 0:
            scale_factor = [1 / s for s in img_meta['scale_factor']]
            bboxes = scale_boxes(bboxes, scale_factor)
        bboxes = get_box_tensor(bboxes)
        box_dim = bboxes.size(-1)
        if rescale and box_dim == 4 and 'ori_shape' in img_meta:
            h, w = img_meta['ori_shape'][:2]
            bboxes = torch.stack([bboxes[:, 0].clamp(0, w), bboxes[:, 1].clamp(0, h),
                                  bboxes[:, 2].clamp(0, w), bboxes[:, 3].clamp(0, h)], dim=1)
        bboxes = bboxes.view(num_rois, -1)
        if box_dim == 4:  # zero-area boxes: zero their class scores (per class with class-specific regression)
            b = bboxes.view(num_rois, -1, 4)
            valid = ((b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])).to(scores.dtype)
            scores = torch.cat([scores[:, :-1] * valid, scores[:, -1:]], dim=1)
        if rcnn_test_cfg is None:
            results.bboxes, results.scores = bboxes, scores
            return results
        det_bboxes, det_labels = multiclass_nms(bboxes.float(), scores.float(), rcnn_test_cfg.score_thr,
                                                rcnn_test_cfg.nms, rcnn_test_cfg.max_per_img, box_dim=box_dim)
        results.bboxes = det_bboxes[:, :-1]
        results.scores = det_bboxes[:, -1]
        results.labels = det_labels
        return results
