"""Task modules: helpers models build that are not network layers.

Detection (mmdet TASK_UTILS): OV-DQUO's class-gated Hungarian assigner and per-batch vocabulary sampler.
Segmentation post-processing (``postprocess=[...]`` of training-free segmentors): :class:`PAMR`, :class:`MaskVote`;
class-agnostic mask sources (TASK_UTILS) and the id-map file format used by the mask vote (and CorrCLIP).
"""
from .category_sampler import OVCategorySampler, batch_true_labels, gt_with_pseudo_fields
from .mask_io import (MASK_KEY, MASK_PAD_VALUE, MaskFileError, crop_mask_ids, load_mask_file, mask_file_path,
                      paint_masks, resize_mask_ids, save_mask_file)
from .mask_sources import (ColorMaskSource, GeneratedMaskSource, MaskFileSource, SAM2MaskSource, SAMMaskSource,
                           build_mask_source, read_rgb)
from .mask_vote import MaskVote, mask_vote
from .pamr import PAMR, pamr, pamr_affinity
from .seg_postprocess import SegPostProcessor, SkipCounter, build_seg_postprocessors, run_seg_postprocess
from .wildcard_assigner import WildcardHungarianAssigner

__all__ = ['OVCategorySampler', 'WildcardHungarianAssigner', 'batch_true_labels', 'gt_with_pseudo_fields',
           'MASK_KEY', 'MASK_PAD_VALUE', 'MaskFileError', 'crop_mask_ids', 'load_mask_file', 'mask_file_path',
           'paint_masks', 'resize_mask_ids', 'save_mask_file', 'ColorMaskSource', 'GeneratedMaskSource',
           'MaskFileSource', 'SAM2MaskSource', 'SAMMaskSource', 'build_mask_source', 'read_rgb', 'MaskVote',
           'mask_vote', 'PAMR', 'pamr', 'pamr_affinity', 'SegPostProcessor', 'SkipCounter',
           'build_seg_postprocessors', 'run_seg_postprocess']
