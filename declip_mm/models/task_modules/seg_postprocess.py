"""Model-agnostic post-processing of training-free segmentation, run per image at the original size.

A segmentor takes ``postprocess=[dict(type='PAMR'), dict(type='MaskVote', mask_source=...)]``.  Each step is a
:class:`SegPostProcessor` with two hooks:

* ``refine_logits(logits (Q, H, W), image (3, h, w), data_sample) -> (Q, H, W)``: before the softmax / argmax
  (PAMR);
* ``refine_label(label (1, H, W) long, data_sample) -> (1, H, W)``: after argmax and ``prob_thd`` (mask vote).

:func:`run_seg_postprocess` runs every step's logit hook in list order, the segmentor's own logits -> label rule,
then every step's label hook in list order.  Every step sees one image at a time, so results do not depend on the
batch size.  Steps that skip an image (e.g. a missing mask file with ``on_missing='skip'``) record it;
``SegPostProcessReportHook`` logs the count at the end of the test / val run.
"""
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log

from declip_mm.registry import MODELS, SEG_MODELS

__all__ = ['SkipCounter', 'SegPostProcessor', 'build_seg_postprocessors', 'run_seg_postprocess']


class SkipCounter:
    """Mixin: a per-run count of images seen and of images skipped (with the reason), which
    ``SegPostProcessReportHook`` resets before and logs after a test / val run."""

    def __init__(self):
        self.reset_report()

    def reset_report(self) -> None:
        self.num_seen = 0
        self.skipped: List[str] = []

    def record_skip(self, what: str, reason: str) -> None:
        self.skipped.append(f'{what}: {reason}')
        print_log(f'{type(self).__name__}: skipped {what} ({reason})', logger='current', level=30)

    def report(self) -> dict:
        return dict(name=type(self).__name__, seen=self.num_seen, skipped=list(self.skipped))


class SegPostProcessor(nn.Module, SkipCounter):
    """Base class: identity hooks and the :class:`SkipCounter` report."""

    def __init__(self):
        nn.Module.__init__(self)
        SkipCounter.__init__(self)

    def refine_logits(self, logits: torch.Tensor, image: torch.Tensor, data_sample=None) -> torch.Tensor:
        return logits

    def refine_label(self, label: torch.Tensor, data_sample=None) -> torch.Tensor:
        return label


def _build_one(cfg):
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg)
    cls = MODELS.module_dict.get(cfg.get('type'))
    if cls is not None:
        cfg.pop('type')
        return cls(**cfg)
    return SEG_MODELS.build(cfg)


def build_seg_postprocessors(cfgs: Optional[Sequence]) -> nn.ModuleList:
    """Config list (or modules) -> ``nn.ModuleList`` of :class:`SegPostProcessor` (empty for None)."""
    if cfgs is None:
        return nn.ModuleList()
    if isinstance(cfgs, (dict, nn.Module)):
        cfgs = [cfgs]
    mods = [_build_one(c) for c in cfgs]
    for m in mods:
        if not isinstance(m, SegPostProcessor):
            raise TypeError(f'postprocess steps must be SegPostProcessor modules, got {type(m).__name__}')
    return nn.ModuleList(mods)


def run_seg_postprocess(steps: Sequence[SegPostProcessor], logits: torch.Tensor, image: torch.Tensor, data_sample,
                        to_label: Callable):
    """Logit hooks -> ``to_label(logits) -> (label, probs)`` -> label hooks; returns (label, probs)."""
    for s in steps:
        s.num_seen += 1
        logits = s.refine_logits(logits, image, data_sample)
    label, probs = to_label(logits)
    for s in steps:
        label = s.refine_label(label, data_sample)
    return label, probs
