"""DETR's resize rule (short side ``S``, long side capped at ``max_size``) as an mmdet ``Resize``.

DETR-family code (DETR, Deformable DETR, DINO's original repo, OV-DQUO) resizes with
``datasets/transforms.py::resize``: if ``long / short * S > max_size`` then ``S = int(round(max_size * short / long))``;
the short side becomes ``S`` and the long side ``int(S * long / short)`` (floored), each side then capped at
``max_size``; an image whose short side already is ``S`` is kept.  mmdet's ``Resize(keep_ratio=True)`` rounds
``side * min(long_cap / long, S / short)`` to nearest instead, which differs by one pixel on many images.
"""
from typing import Optional, Tuple, Union

from mmdet.datasets.transforms import Resize
from mmdet.structures.bbox import autocast_box_type

from declip_mm.registry import DET_TRANSFORMS, TRANSFORMS, register_everywhere


def detr_resize_shape(hw: Tuple[int, int], size: int, max_size: Optional[int] = None) -> Tuple[int, int]:
    """Output (h, w) of DETR's resize of an (h, w) image to short side ``size``, long side <= ``max_size``."""
    h, w = hw
    if max_size is not None:
        mn, mx = float(min(w, h)), float(max(w, h))
        if mx / mn * size > max_size:
            size = int(round(max_size * mn / mx))
    if (w <= h and w == size) or (h <= w and h == size):
        oh, ow = h, w
    elif w < h:
        ow, oh = size, int(size * h / w)
    else:
        oh, ow = size, int(size * w / h)
    if max_size is not None:
        oh, ow = min(oh, max_size), min(ow, max_size)
    return oh, ow


@register_everywhere(TRANSFORMS, DET_TRANSFORMS)
class DETRResize(Resize):
    """Resize the short side to ``scale`` with the long side capped at ``max_size``, DETR's rounding (module doc).

    Use inside ``RandomChoiceResize(scales=[480, 512, ...], resize_type='DETRResize', max_size=1333)`` for DETR's
    ``RandomResize(scales, max_size)``.  ``backend='pillow'`` resizes with PIL's antialiased bilinear filter, the
    one torchvision applies to PIL images in the original code (with ``LoadImageFromFile(imdecode_backend='pillow')``
    the pixels then match the original's); the default ``'cv2'`` is faster.

    Args:
        scale: short side ``S`` (int), or ``(S, max_size)``.
        max_size: cap of the long side (None: no cap); ignored when ``scale`` is a tuple.
        Others: as mmdet's ``Resize`` (``keep_ratio`` is not used: the output size is computed here).
    """

    def __init__(self, scale: Union[int, Tuple[int, Optional[int]]] = 800, max_size: Optional[int] = None,
                 **kwargs) -> None:
        kwargs.pop('keep_ratio', None)
        super().__init__(scale=1, keep_ratio=False, **kwargs)
        self.scale = scale  # read at every call: RandomChoiceResize assigns it
        self.max_size = max_size

    def _target(self) -> Tuple[int, Optional[int]]:
        if isinstance(self.scale, (tuple, list)):
            return int(self.scale[0]), (None if self.scale[1] is None else int(self.scale[1]))
        return int(self.scale), self.max_size

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        size, max_size = self._target()
        oh, ow = detr_resize_shape(results['img'].shape[:2], size, max_size)
        results['scale'] = (ow, oh)
        self._resize_img(results)
        self._resize_bboxes(results)
        self._resize_masks(results)
        self._resize_seg(results)
        self._record_homography_matrix(results)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, max_size={self.max_size}, '
                f'backend={self.backend}, interpolation={self.interpolation})')
