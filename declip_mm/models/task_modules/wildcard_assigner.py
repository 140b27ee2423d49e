"""Hungarian matching gated by each query's text class (OV-DQUO's open-vocabulary matcher)."""
from typing import Optional

import torch
from mmdet.models.task_modules.assigners import AssignResult, HungarianAssigner
from mmdet.registry import TASK_UTILS as DET_TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment

from declip_mm.registry import TASK_UTILS, register_everywhere


@register_everywhere(DET_TASK_UTILS, TASK_UTILS)
class WildcardHungarianAssigner(HungarianAssigner):
    """One-to-one matching in which a query may only take a target of its own class.

    Every query carries the class of the text embedding it was built from (``pred_instances.query_classes``); true
    boxes carry their vocabulary position, open-world pseudo boxes the wildcard index (``gt_instances.labels``).
    The cost is the sum of ``match_costs`` on the single objectness logit (every target counts as class 0) and the
    boxes; then

    * a pair is allowed only if the query's class equals the target's label;
    * a target is kept only if some allowed query overlaps it (GIoU > 0); the other targets are not matched;
    * forbidden pairs cost ``forbidden_cost`` (99) and assigned pairs at that cost are dropped.

    The assigned pair itself need not overlap (a query at IoU 0 can win the column); ``require_pair_overlap=True``
    forbids pairs with IoU 0 as well (OV-DQUO: False).

    Args:
        match_costs: as :class:`mmdet HungarianAssigner` (OV-DQUO: ``FocalLossCost(weight=2, eps=1e-7)``,
            ``BBoxL1Cost(weight=5, box_format='xywh')``, ``IoUCost('giou', weight=2)``).
    ``pred_instances``: ``scores`` (N, 1) logits, ``bboxes`` (N, 4) pixel xyxy, ``query_classes`` (N,);
    ``gt_instances``: ``bboxes`` (G, 4) pixel xyxy, ``labels`` (G,) class positions (wildcard index for pseudo).
    """

    def __init__(self, match_costs, forbidden_cost: float = 99.0, require_pair_overlap: bool = False) -> None:
        super().__init__(match_costs)
        self.forbidden_cost = float(forbidden_cost)
        self.require_pair_overlap = require_pair_overlap

    def allowed_pairs(self, pred_instances: InstanceData, gt_instances: InstanceData) -> torch.Tensor:
        """(N, G) bool: pairs the matching may use (class gate + overlapping-column rule)."""
        allowed = pred_instances.query_classes[:, None] == gt_instances.labels[None, :]
        giou = bbox_overlaps(pred_instances.bboxes, gt_instances.bboxes, mode='giou')
        allowed = allowed & (giou.masked_fill(~allowed, -1) > 0).any(0, keepdim=True)
        if self.require_pair_overlap:
            allowed = allowed & (bbox_overlaps(pred_instances.bboxes, gt_instances.bboxes) > 0)
        return allowed

    def assign(self, pred_instances: InstanceData, gt_instances: InstanceData, img_meta: Optional[dict] = None,
               **kwargs) -> AssignResult:
        num_gts, num_preds = len(gt_instances), len(pred_instances)
        device = gt_instances.labels.device
        assigned_gt_inds = torch.zeros((num_preds, ), dtype=torch.long, device=device)
        assigned_labels = torch.full((num_preds, ), -1, dtype=torch.long, device=device)
        if num_gts == 0 or num_preds == 0:
            return AssignResult(num_gts, assigned_gt_inds, None, labels=assigned_labels)
        objectness_gt = InstanceData(bboxes=gt_instances.bboxes, labels=torch.zeros_like(gt_instances.labels))
        preds = InstanceData(scores=pred_instances.scores, bboxes=pred_instances.bboxes)
        cost = torch.stack([mc(pred_instances=preds, gt_instances=objectness_gt, img_meta=img_meta)
                            for mc in self.match_costs]).sum(0)
        allowed = self.allowed_pairs(pred_instances, gt_instances)
        cost = cost.masked_fill(~allowed, self.forbidden_cost).detach().cpu()
        rows, cols = linear_sum_assignment(cost)
        keep = cost[rows, cols] < self.forbidden_cost
        rows = torch.from_numpy(rows).to(device)[keep.to(device)]
        cols = torch.from_numpy(cols).to(device)[keep.to(device)]
        assigned_gt_inds[rows] = cols + 1
        assigned_labels[rows] = gt_instances.labels[cols]
        return AssignResult(num_gts, assigned_gt_inds, None, labels=assigned_labels)
