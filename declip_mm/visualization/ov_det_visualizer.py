"""mmdet's ``DetLocalVisualizer`` that draws class names in any script (``东京塔``, ``café``, ``Ελλάδα``)."""
import numpy as np
from matplotlib.colors import to_rgb
from mmdet.registry import VISUALIZERS as DET_VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmengine.visualization.utils import tensor2ndarray, value2list

from declip_mm.registry import VISUALIZERS
from .text import _default_font, font_for, put_text

__all__ = ['OVDetLocalVisualizer']


def _rgb255(c) -> tuple:
    if isinstance(c, str):
        return tuple(int(round(255 * v)) for v in to_rgb(c))
    c = tuple(c)[:3]
    return tuple(int(v) for v in c) if any(v > 1 for v in c) else tuple(int(round(255 * v)) for v in c)


@VISUALIZERS.register_module()
@DET_VISUALIZERS.register_module()
class OVDetLocalVisualizer(DetLocalVisualizer):
    """``DetLocalVisualizer`` whose ``draw_texts`` keeps mmdet's look for text matplotlib's default font covers,
    uses an installed font that has the glyphs otherwise (e.g. Noto CJK), and falls back to OpenCV's Unicode text
    (as the segmentation legend) when no installed font has them."""

    def draw_texts(self, texts, positions, font_sizes=None, colors='g', vertical_alignments='top',
                   horizontal_alignments='left', font_families='sans-serif', bboxes=None, font_properties=None):
        items = [texts] if isinstance(texts, str) else list(texts)
        kw = dict(font_sizes=font_sizes, colors=colors, vertical_alignments=vertical_alignments,
                  horizontal_alignments=horizontal_alignments, font_families=font_families, bboxes=bboxes)
        fonts = [font_for(t) for t in items]
        if font_properties is not None or all(f == _default_font() for f in fonts):
            return super().draw_texts(texts, positions, font_properties=font_properties, **kw)
        if all(f is not None for f in fonts):
            from matplotlib.font_manager import FontProperties
            return super().draw_texts(texts, positions, font_properties=[FontProperties(fname=f) for f in fonts],
                                      **kw)
        n = len(items)
        pos = tensor2ndarray(positions).reshape(n, 2)
        sizes = value2list(self._default_font_size if font_sizes is None else font_sizes, (int, float), n)
        cols = colors if isinstance(colors, list) else [colors] * n
        valign = value2list(vertical_alignments, str, n)
        halign = value2list(horizontal_alignments, str, n)
        boxes = bboxes if isinstance(bboxes, list) and len(bboxes) == n else [
            bboxes[0] if isinstance(bboxes, list) else bboxes] * n
        img = self.get_image().copy()
        for t, (x, y), size, col, va, ha, box in zip(items, pos, sizes, cols, valign, halign, boxes):
            bg = None
            if box:
                bg = (_rgb255(box.get('facecolor', 'white')), float(box.get('alpha', 1.0)))
            height = max(int(round(size * self.dpi / 72)), 8)  # the em of a matplotlib font size, in pixels
            put_text(img, t, (x, y), height, _rgb255(col), background=bg,
                     valign='center' if va == 'center' else ('bottom' if va == 'bottom' else 'top'), halign=ha)
        self.set_image(img)
        return self
