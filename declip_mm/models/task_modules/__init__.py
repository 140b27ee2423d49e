"""Task modules (mmdet TASK_UTILS): OV-DQUO's class-gated Hungarian assigner and per-batch vocabulary sampler."""
from .category_sampler import OVCategorySampler, batch_true_labels, gt_with_pseudo_fields
from .wildcard_assigner import WildcardHungarianAssigner

__all__ = ['OVCategorySampler', 'WildcardHungarianAssigner', 'batch_true_labels', 'gt_with_pseudo_fields']
