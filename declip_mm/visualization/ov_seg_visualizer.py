"""mmseg's ``SegLocalVisualizer`` plus a legend of the class names that occur in the drawn map."""
from typing import List, Sequence

import cv2
import numpy as np
from mmseg.visualization import SegLocalVisualizer

from declip_mm.registry import VISUALIZERS
from mmseg.registry import VISUALIZERS as SEG_VISUALIZERS


def draw_legend(image: np.ndarray, labels: Sequence[int], classes: Sequence[str], palette: Sequence) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W + legend width, 3): one colour swatch + name per label (in the given order)."""
    h = image.shape[0]
    row = max(14, min(28, h // max(len(labels), 1)))
    scale = row / 28.0
    names = [str(classes[i]) for i in labels]
    text_w = max([cv2.getTextSize(n, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, 1)[0][0] for n in names] or [0])
    width = int(row * 1.5 + text_w + 12)
    panel = np.full((h, width, 3), 255, dtype=np.uint8)
    for k, (lab, name) in enumerate(zip(labels, names)):
        y = 4 + k * row
        if y + row > h:  # more names than rows: say how many are not listed
            cv2.putText(panel, f'+{len(names) - k} more', (4, min(h - 4, y + int(row * 0.7))),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), 1, cv2.LINE_AA)
            break
        color = tuple(int(c) for c in palette[lab])
        cv2.rectangle(panel, (4, y), (4 + int(row * 0.9), y + int(row * 0.8)), color, -1)
        cv2.putText(panel, name, (int(row * 1.2) + 6, y + int(row * 0.7)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
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
