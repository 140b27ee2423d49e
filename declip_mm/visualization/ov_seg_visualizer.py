"""mmseg's ``SegLocalVisualizer`` plus a legend of the class names that occur in the drawn map."""
from typing import List, Sequence

import cv2
import numpy as np
from mmseg.visualization import SegLocalVisualizer

from declip_mm.registry import VISUALIZERS
from mmseg.registry import VISUALIZERS as SEG_VISUALIZERS
from .text import put_text, text_size

MIN_ROW, MAX_ROW = 14, 28  # legend row height (px)


def draw_legend(image: np.ndarray, labels: Sequence[int], classes: Sequence[str], palette: Sequence) -> np.ndarray:
    """(H, W, 3) RGB -> (H', W + legend width, 3): one colour swatch + name per label (in the given order).

    Every label is listed: rows of 14-28 px fill the image height, then further columns.  An image lower than one
    row (H < 22) is padded with white at the bottom to H' = 22 (the same for any label count, so that a ground
    truth and a prediction picture still have one height); otherwise H' = H.  Names are drawn with OpenCV, which
    renders UTF-8 (CJK included) from OpenCV 5 on.
    """
    h = image.shape[0]
    n = len(labels)
    row = max(MIN_ROW, min(MAX_ROW, (h - 8) // max(n, 1)))
    height = max(h, MIN_ROW + 8)
    per_col = max(1, (height - 8) // row)
    names = [str(classes[i]) for i in labels]
    text_h = max(int(row * 0.45), 5)
    cols = [names[i:i + per_col] for i in range(0, n, per_col)] or [[]]
    widths = [int(row * 1.2) + 6 + max([text_size(t, text_h)[0] for t in c] or [0]) + 8 for c in cols]
    panel = np.full((height, sum(widths), 3), 255, dtype=np.uint8)
    for k, (lab, name) in enumerate(zip(labels, names)):
        c, r = divmod(k, per_col)
        x0, y = sum(widths[:c]), 4 + r * row
        color = tuple(int(v) for v in palette[lab])
        cv2.rectangle(panel, (x0 + 4, y), (x0 + 4 + int(row * 0.9), y + int(row * 0.8)), color, -1)
        put_text(panel, name, (x0 + int(row * 1.2) + 6, y + row * 0.4), text_h, (0, 0, 0), valign='center')
    if height > h:
        image = np.concatenate([image, np.full((height - h, ) + image.shape[1:], 255, image.dtype)])
    return np.concatenate([image, panel], axis=1)


@VISUALIZERS.register_module()
@SEG_VISUALIZERS.register_module()
class OVSegLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` whose drawn maps carry a legend (classes present, by area) on the right."""

    def _draw_sem_seg(self, image, sem_seg, *args, **kwargs):
        drawn = super()._draw_sem_seg(image, sem_seg, *args, **kwargs)
        classes, palette = self.dataset_meta['classes'], self.dataset_meta['palette']
        data = sem_seg.cpu().data.numpy().reshape(-1)
        ids, counts = np.unique(data, return_counts=True)
        keep = ids < len(classes)
        labels: List[int] = [int(i) for i in ids[keep][np.argsort(-counts[keep], kind='stable')]]
        return draw_legend(drawn, labels, classes, palette)
