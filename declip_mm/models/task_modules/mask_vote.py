"""The mask vote ("map correction" of CorrCLIP, corrclip_segmentor.py:216-222).

For every region id of a class-agnostic id map except the smallest one present (the unsegmented union), every
pixel of the region gets the region's most frequent predicted label; ties go to the smallest label (what
``torch.mode`` returns on CPU; ``argmax`` over label counts here, so the result is the same on every device).
Pixels of the smallest id keep their label.  The vote runs on the final label map (after argmax and
``prob_thd``) at the original image size; the id map must have that size.
"""
from typing import Optional, Union

import torch

from declip_mm.registry import MODELS, SEG_MODELS, register_everywhere
from .mask_io import MaskFileError
from .mask_sources import build_mask_source
from .seg_postprocess import SegPostProcessor

__all__ = ['MaskVote', 'mask_vote']


def mask_vote(label: torch.Tensor, ids: torch.Tensor, ignore_smallest: bool = True) -> torch.Tensor:
    """(..., H, W) labels (>= 0) and an (H, W) id map -> voted labels, same shape and dtype."""
    if tuple(ids.shape[-2:]) != tuple(label.shape[-2:]):
        raise ValueError(f'id map {tuple(ids.shape[-2:])} and label map {tuple(label.shape[-2:])} differ in size')
    lab = label.reshape(-1).long()
    uniq, inv = torch.unique(ids.reshape(-1).to(label.device), return_inverse=True)  # sorted: inv 0 = smallest
    k = int(lab.max()) + 1 if lab.numel() else 1
    counts = torch.bincount(inv * k + lab, minlength=len(uniq) * k).view(len(uniq), k)
    voted = counts.argmax(dim=1)[inv]  # first maximum = smallest label among the most frequent
    if ignore_smallest:
        voted = torch.where(inv == 0, lab, voted)
    return voted.view(label.shape).to(label.dtype)


@register_everywhere(MODELS, SEG_MODELS)
class MaskVote(SegPostProcessor):
    """Mask vote as a ``postprocess`` step: needs the image file (``img_path`` in the data sample's metainfo).

    Args:
        mask_source: a TASK_UTILS config / object mapping an image path to its id map (``MaskFileSource``,
            ``SAM2MaskSource``, ``SAMMaskSource``); None: the id map the segmentor already read for this image
            (CorrCLIP's segmentor stores it as the data sample's ``region_ids``, so masks are read / generated
            once).
        on_missing: ``'error'``: a missing, unreadable or wrongly sized mask raises an error naming the file;
            ``'skip'``: that image keeps its labels, and is counted and logged (``SegPostProcessReportHook``
            prints the total at the end of the run).
        ignore_smallest: leave the smallest id (the unsegmented union) alone (CorrCLIP: always).
    """

    def __init__(self, mask_source: Union[dict, object], on_missing: str = 'error', ignore_smallest: bool = True):
        super().__init__()
        if on_missing not in ('error', 'skip'):
            raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        self.mask_source = build_mask_source(mask_source)
        self.on_missing = on_missing
        self.ignore_smallest = ignore_smallest

    def _ids(self, img_path: Optional[str], shape) -> Optional[torch.Tensor]:
        if not img_path:
            raise MaskFileError('MaskVote needs the image file path (data_sample.img_path) to find its masks')
        ids = self.mask_source(img_path)
        if tuple(ids.shape) != tuple(shape):
            where = getattr(self.mask_source, 'path_for', lambda p: None)(img_path) or img_path
            raise MaskFileError(f'masks {where!r} are {ids.shape[0]}x{ids.shape[1]} but the prediction for '
                                f'{img_path!r} is {shape[0]}x{shape[1]} (masks must have the original image size)',
                                where)
        return torch.as_tensor(ids)

    def refine_label(self, label: torch.Tensor, data_sample=None) -> torch.Tensor:
        img_path = data_sample.metainfo.get('img_path') if data_sample is not None else None
        if self.mask_source is None:  # the segmentor's own id map (its errors / skips are handled there)
            ids = data_sample.get('region_ids') if data_sample is not None else None
            if ids is None:
                raise MaskFileError(f'MaskVote(mask_source=None) needs the segmentor to provide region_ids for '
                                    f'{img_path or "the image"} (only a CorrCLIP segmentor does)')
            return mask_vote(label, torch.as_tensor(ids), self.ignore_smallest)
        try:
            ids = self._ids(img_path, label.shape[-2:])
        except MaskFileError as e:
            if self.on_missing == 'error':
                raise
            self.record_skip(img_path or 'an image without img_path', str(e))
            return label
        return mask_vote(label, ids, self.ignore_smallest)

    def extra_repr(self) -> str:
        return f'mask_source={self.mask_source!r}, on_missing={self.on_missing!r}'
