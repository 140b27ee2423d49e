"""mmdet ``Resize`` whose keep-ratio result never has a side of zero pixels."""
import copy

import mmcv
from mmdet.datasets.transforms import Resize

from declip_mm.registry import DET_TRANSFORMS, TRANSFORMS, register_everywhere


@register_everywhere(TRANSFORMS, DET_TRANSFORMS)
class ResizeAtLeastOnePixel(Resize):
    """mmdet's ``Resize`` (same arguments, same results) except that a keep-ratio resize keeps >= 1 pixel per side.

    ``mmcv.imrescale`` sizes a side as ``int(side * scale + 0.5)``: an image of extreme aspect ratio (4000 x 8 fitted
    into 128 x 128 gives 0.26 rows) becomes 0 pixels and cv2 refuses it (``inv_scale_x > 0``).  Such a side is set
    to 1 pixel and the image (boxes, masks, maps) is resized to that exact size; ``scale_factor`` is new / old per
    axis, as in mmdet.  Every other image is resized exactly as by ``Resize``.
    """

    def transform(self, results: dict) -> dict:
        if self.keep_ratio and results.get('img') is not None:
            h, w = results['img'].shape[:2]
            scale = self.scale or (int(w * self.scale_factor[0] + 0.5), int(h * self.scale_factor[1] + 0.5))
            new_w, new_h = mmcv.rescale_size((w, h), scale)
            if min(new_w, new_h) < 1:
                exact = copy.copy(self)
                exact.keep_ratio, exact.scale = False, (max(new_w, 1), max(new_h, 1))
                results = Resize.transform(exact, results)
                results['keep_ratio'] = True
                return results
        return super().transform(results)
