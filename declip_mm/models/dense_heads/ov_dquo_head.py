"""OV-DQUO's DETR head: one objectness logit shared by the decoder layers, class-gated matching, varifocal loss
with pseudo weights, classification-only denoising loss, CLIP-scored predictions with per-class NMS."""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import Linear
from mmdet.models.dense_heads import DINOHead
from mmdet.models.layers import inverse_sigmoid, multiclass_nms
from mmdet.registry import MODELS as DET_MODELS
from mmdet.registry import TASK_UTILS as DET_TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps, bbox_xyxy_to_cxcywh
from mmdet.utils import reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from declip_mm.registry import MODELS, register_everywhere

DN_NORMALIZERS = ('true_matches', 'dn_positives')


@register_everywhere(DET_MODELS, MODELS)
class OVDQUOHead(DINOHead):
    """Head of OV-DQUO (on mmdet's ``DINOHead``).

    Layers: the decoder layers share **one** ``Linear(embed_dims, 1)`` objectness branch (``cls_branches[0..L-1]``
    are the same module), the encoder proposals use a separate copy (``cls_branches[L]``); box branches are
    independent 3-layer MLPs as in DINO.  Output boxes are ``sigmoid(delta + inverse_sigmoid(ref, eps=1e-3))``.

    Losses (per decoder layer, each re-matched with ``train_cfg.assigner``, a
    :class:`~declip_mm.models.task_modules.WildcardHungarianAssigner`; the encoder top-k with
    ``train_cfg.enc_assigner``, a plain ``HungarianAssigner`` over true and pseudo boxes):

    * ``loss_cls`` (:class:`~declip_mm.models.losses.OVVarifocalLoss`): IoU targets for matched queries (true and
      pseudo), pseudo matches weighted by ``pseudo_weight ** pseudo_weight_power``, divided by n_true + n_pseudo;
    * ``loss_bbox`` (L1, normalised cxcywh) and ``loss_iou`` (GIoU) on **true** matches only, divided by n_true;
    * ``dn_loss_cls`` (``loss_dn_cls``, sigmoid focal): target 1 on the positive slot of every denoising target in
      every group, 0 on all other denoising slots, positives weighted like pseudo matches; divided by n_true x G
      (``dn_normalizer='true_matches'``, OV-DQUO) or by the number of positive slots (``'dn_positives'``).  No
      denoising box loss.

    n_true / n_pseudo are the last decoder layer's matched counts (averaged over ranks, each clamped >= 1) and are
    reused for the auxiliary layers and the encoder.  Loss keys: ``loss_cls``, ``loss_bbox``, ``loss_iou``,
    ``d{i}.loss_*`` (auxiliary layers), ``enc_loss_*``, ``dn_loss_cls``, ``d{i}.dn_loss_cls``.

    Test config (``test_cfg``): ``max_per_img`` (100 OV-COCO / 300 OV-LVIS), ``score_thr`` (0.001, strict),
    ``nms`` (``dict(type='nms', iou_threshold=0.5)``, per class), ``score_roundtrip`` (True: scores pass
    ``sigmoid(inverse_sigmoid(p, 1e-3))`` as in OV-DQUO, which saturates them at ~0.999), ``clip_boxes`` (False:
    boxes are not clipped to the image, as OV-DQUO).
    """

    def __init__(self, *args, loss_dn_cls: dict = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                                        loss_weight=2.0),
                 pseudo_weight_power: float = 0.5, dn_normalizer: str = 'true_matches', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.num_classes != 1 or self.cls_out_channels != 1:
            raise ValueError(f'OVDQUOHead predicts one objectness logit: set num_classes=1 (got {self.num_classes}) '
                             'and a sigmoid classification loss')
        if dn_normalizer not in DN_NORMALIZERS:
            raise ValueError(f'dn_normalizer must be one of {DN_NORMALIZERS}, got {dn_normalizer!r}')
        self.loss_dn_cls = DET_MODELS.build(loss_dn_cls)
        self.pseudo_weight_power = pseudo_weight_power
        self.dn_normalizer = dn_normalizer
        self.enc_assigner = None
        if self.train_cfg and self.train_cfg.get('enc_assigner') is not None:
            self.enc_assigner = DET_TASK_UTILS.build(self.train_cfg['enc_assigner'])

    @property
    def num_decoder_layers(self) -> int:
        return self.num_pred_layer - 1 if self.as_two_stage else self.num_pred_layer

    def _init_layers(self) -> None:
        fc_cls = Linear(self.embed_dims, self.cls_out_channels)
        reg_branch = []
        for _ in range(self.num_reg_fcs):
            reg_branch += [Linear(self.embed_dims, self.embed_dims), nn.ReLU()]
        reg_branch.append(Linear(self.embed_dims, 4))
        reg_branch = nn.Sequential(*reg_branch)
        n_dec = self.num_pred_layer - 1 if self.as_two_stage else self.num_pred_layer
        cls = [fc_cls] * n_dec + ([copy.deepcopy(fc_cls)] if self.as_two_stage else [])
        self.cls_branches = nn.ModuleList(cls)
        self.reg_branches = nn.ModuleList([copy.deepcopy(reg_branch) for _ in range(self.num_pred_layer)])

    def forward(self, hidden_states: Tensor, references: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """(L, B, Q, E) states + L+1 references (B, Q, 4) -> logits (L, B, Q, 1), boxes (L, B, Q, 4) cxcywh."""
        classes, coords = [], []
        for lid in range(hidden_states.shape[0]):
            h = hidden_states[lid]
            classes.append(self.cls_branches[lid](h))
            coords.append((self.reg_branches[lid](h) + inverse_sigmoid(references[lid], eps=1e-3)).sigmoid())
        return torch.stack(classes), torch.stack(coords)

    # ------------------------------------------------------------------ losses
    def loss(self, hidden_states: Tensor, references: List[Tensor], enc_outputs_class: Tensor,
             enc_outputs_coord: Tensor, batch_data_samples, dn_meta: Dict, query_classes: Tensor,
             wildcard_index: int) -> dict:
        """``batch_data_samples``: gt_instances with vocabulary labels (-1 pseudo), ``pseudo``, ``pseudo_weights``;
        ``dn_meta['target_weights']``: per image the foreground weights of its denoising targets."""
        batch_gt = [s.gt_instances for s in batch_data_samples]
        metas = [s.metainfo for s in batch_data_samples]
        cls, boxes = self(hidden_states, references)
        return self.loss_by_feat(cls, boxes, enc_outputs_class, enc_outputs_coord, batch_gt, metas, dn_meta,
                                 query_classes, wildcard_index)

    def loss_by_feat(self, all_layers_cls_scores: Tensor, all_layers_bbox_preds: Tensor, enc_cls_scores: Tensor,
                     enc_bbox_preds: Tensor, batch_gt_instances: List[InstanceData], batch_img_metas: List[dict],
                     dn_meta: Dict, query_classes: Tensor, wildcard_index: int,
                     batch_gt_instances_ignore=None) -> Dict[str, Tensor]:
        match_cls, match_boxes, dn_cls, _ = self.split_outputs(all_layers_cls_scores, all_layers_bbox_preds, dn_meta)
        num_layers = match_cls.shape[0]
        assigns = [self.assign_layer(match_cls[i], match_boxes[i], batch_gt_instances, batch_img_metas,
                                     query_classes, wildcard_index) for i in range(num_layers)]
        n_true, n_pseudo = self.num_matches(assigns[-1], batch_gt_instances, match_cls)
        losses = {}
        for i in range(num_layers):
            l_cls, l_bbox, l_iou = self.layer_losses(match_cls[i], match_boxes[i], assigns[i], batch_gt_instances,
                                                     batch_img_metas, n_true, n_pseudo)
            prefix = '' if i == num_layers - 1 else f'd{i}.'
            losses.update({f'{prefix}loss_cls': l_cls, f'{prefix}loss_bbox': l_bbox, f'{prefix}loss_iou': l_iou})
        if enc_cls_scores is not None:
            enc_assigns = self.assign_layer(enc_cls_scores, enc_bbox_preds, batch_gt_instances, batch_img_metas)
            l_cls, l_bbox, l_iou = self.layer_losses(enc_cls_scores, enc_bbox_preds, enc_assigns, batch_gt_instances,
                                                     batch_img_metas, n_true, n_pseudo)
            losses.update(enc_loss_cls=l_cls, enc_loss_bbox=l_bbox, enc_loss_iou=l_iou)
        dn_losses = self.loss_dn(dn_cls, dn_meta, n_true)
        for i, loss in enumerate(dn_losses):
            losses['dn_loss_cls' if i == num_layers - 1 else f'd{i}.dn_loss_cls'] = loss
        return losses

    def assign_layer(self, cls: Tensor, boxes: Tensor, batch_gt: List[InstanceData], metas: List[dict],
                     query_classes: Optional[Tensor] = None, wildcard_index: Optional[int] = None) -> list:
        """Per image ``(query indices, gt indices)`` of the matched pairs; gated by ``query_classes`` when given
        (decoder layers), otherwise the encoder's plain matching over all targets."""
        out = []
        for b, (gt, meta) in enumerate(zip(batch_gt, metas)):
            img_h, img_w = meta['img_shape']
            factor = boxes.new_tensor([img_w, img_h, img_w, img_h])
            pred = InstanceData(scores=cls[b], bboxes=bbox_cxcywh_to_xyxy(boxes[b]) * factor)
            if query_classes is None:
                target = InstanceData(bboxes=gt.bboxes, labels=torch.zeros_like(gt.labels))
                res = self.enc_assigner.assign(pred, target, img_meta=meta)
            else:
                pred.query_classes = query_classes[b]
                target = InstanceData(bboxes=gt.bboxes,
                                      labels=torch.where(gt.pseudo, torch.full_like(gt.labels, wildcard_index),
                                                         gt.labels))
                res = self.assigner.assign(pred, target, img_meta=meta)
            pos = torch.nonzero(res.gt_inds > 0).flatten()
            out.append((pos, res.gt_inds[pos] - 1))
        return out

    @staticmethod
    def num_matches(assigns: list, batch_gt: List[InstanceData], ref: Tensor) -> Tuple[float, float]:
        """(n_true, n_pseudo) matched pairs, averaged over ranks, each clamped >= 1."""
        n_pseudo = sum(int(gt.pseudo[g].sum()) for (_, g), gt in zip(assigns, batch_gt))
        n_true = sum(len(g) for _, g in assigns) - n_pseudo
        counts = reduce_mean(ref.new_tensor([n_true, n_pseudo], dtype=torch.float))
        return max(float(counts[0]), 1.0), max(float(counts[1]), 1.0)

    def layer_losses(self, cls: Tensor, boxes: Tensor, assigns: list, batch_gt: List[InstanceData],
                     metas: List[dict], n_true: float, n_pseudo: float) -> Tuple[Tensor, Tensor, Tensor]:
        B, Q = cls.shape[:2]
        target = cls.new_zeros(B, Q)
        matched = torch.zeros(B, Q, dtype=torch.bool, device=cls.device)
        weight = cls.new_ones(B, Q)
        pred_true, gt_true, pred_px, gt_px = [], [], [], []
        for b, ((pos, g), gt, meta) in enumerate(zip(assigns, batch_gt, metas)):
            img_h, img_w = meta['img_shape']
            factor = boxes.new_tensor([img_w, img_h, img_w, img_h])
            box_px = bbox_cxcywh_to_xyxy(boxes[b, pos]) * factor
            target[b, pos] = bbox_overlaps(box_px.detach(), gt.bboxes[g].to(box_px.dtype), is_aligned=True)
            matched[b, pos] = True
            ps = gt.pseudo[g]
            weight[b, pos[ps]] = gt.pseudo_weights[g[ps]].to(weight.dtype) ** self.pseudo_weight_power
            pred_true.append(boxes[b, pos[~ps]])
            gt_true.append(bbox_xyxy_to_cxcywh(gt.bboxes[g[~ps]].to(boxes.dtype) / factor))
            pred_px.append(box_px[~ps])
            gt_px.append(gt.bboxes[g[~ps]].to(boxes.dtype))
        loss_cls = self.loss_cls(cls, target[..., None], matched[..., None], weight[..., None],
                                 avg_factor=n_true + n_pseudo)
        loss_bbox = self.loss_bbox(torch.cat(pred_true), torch.cat(gt_true), avg_factor=n_true)
        loss_iou = self.loss_iou(torch.cat(pred_px), torch.cat(gt_px), avg_factor=n_true)
        return loss_cls, loss_bbox, loss_iou

    def loss_dn(self, dn_cls: Optional[Tensor], dn_meta: Dict, n_true: float) -> List[Tensor]:
        """Classification-only denoising loss of every decoder layer (see the class docstring)."""
        num_dn = dn_meta['num_denoising_queries'] if dn_meta else 0
        groups = dn_meta['num_denoising_groups'] if dn_meta else 1
        num_pos = sum(len(w) for w in dn_meta['target_weights']) * groups if num_dn else 0
        if self.dn_normalizer == 'true_matches':
            avg = n_true * groups  # OV-DQUO: matched TRUE boxes of the last layer x groups
        else:  # every rank reduces, also one without denoising queries
            avg = max(float(reduce_mean(self.cls_branches[0].weight.new_tensor(float(num_pos)))), 1.0)
        if dn_cls is None or num_dn == 0:
            zero = self.cls_branches[0].weight.sum() * 0  # keeps every rank's graph the same under DDP
            return [zero for _ in range(self.num_decoder_layers)]
        L, B, P = dn_cls.shape[:3]
        per_group = P // groups
        labels = torch.full((B, P), self.num_classes, dtype=torch.long, device=dn_cls.device)  # background
        weights = dn_cls.new_ones(B, P)
        for b, w in enumerate(dn_meta['target_weights']):
            n = len(w)
            if n == 0:
                continue
            t = torch.arange(n, device=dn_cls.device)
            pos = (torch.arange(groups, device=dn_cls.device)[:, None] * per_group + t[None]).flatten()
            labels[b, pos] = 0
            weights[b, pos] = w.to(weights.dtype).repeat(groups) ** self.pseudo_weight_power
        return [self.loss_dn_cls(dn_cls[i].reshape(-1, 1), labels.flatten(), weights.flatten(), avg_factor=avg)
                for i in range(L)]

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, scores: Tensor, bbox_preds: Tensor, batch_img_metas: List[dict],
                        rescale: bool = True) -> List[InstanceData]:
        """scores (B, Q, K) class probabilities, bbox_preds (B, Q, 4) normalised cxcywh -> per image
        ``InstanceData(bboxes, scores, labels)`` after per-class NMS."""
        return [self._predict_single(s, b, m, rescale) for s, b, m in zip(scores, bbox_preds, batch_img_metas)]

    def _predict_single(self, scores: Tensor, bbox_pred: Tensor, img_meta: dict, rescale: bool) -> InstanceData:
        cfg = self.test_cfg or {}
        if cfg.get('score_roundtrip', True):
            scores = inverse_sigmoid(scores, eps=1e-3).sigmoid()
        img_h, img_w = img_meta['img_shape']
        boxes = bbox_cxcywh_to_xyxy(bbox_pred)
        boxes = boxes * boxes.new_tensor([img_w, img_h, img_w, img_h])
        if cfg.get('clip_boxes', False):
            boxes[:, 0::2].clamp_(min=0, max=img_w)
            boxes[:, 1::2].clamp_(min=0, max=img_h)
        if rescale:
            assert img_meta.get('scale_factor') is not None
            boxes = boxes / boxes.new_tensor(img_meta['scale_factor']).repeat((1, 2))
        num_classes = scores.shape[1]
        with_bg = torch.cat([scores, scores.new_zeros(scores.shape[0], 1)], dim=1)  # background column (excluded)
        # NMS runs in float32 (mmcv's kernel); the kept boxes and scores are read back in the input precision
        _, labels, inds = multiclass_nms(boxes.float(), with_bg.float(), cfg.get('score_thr', 0.001),
                                         cfg.get('nms', dict(type='nms', iou_threshold=0.5)),
                                         max_num=cfg.get('max_per_img', 100), return_inds=True)
        out = InstanceData()
        out.bboxes = boxes[torch.div(inds, num_classes, rounding_mode='floor')]
        out.scores = scores.flatten()[inds]
        out.labels = labels
        return out
