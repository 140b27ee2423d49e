"""Text in pictures for any script.

mmengine's ``Visualizer.draw_texts`` renders with matplotlib's default font (DejaVu Sans), which has no CJK glyphs:
``东京塔`` comes out as empty boxes.  OpenCV >= 5's ``putText`` renders UTF-8 with a built-in Unicode font (that is
why mmseg's and our segmentation legends, drawn with OpenCV, show such names).  :func:`font_for` finds a matplotlib
font that covers a string (the default, else an installed font such as Debian's ``fonts-noto-cjk``);
:func:`put_text` draws with OpenCV when none does.
"""
import functools
import warnings
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ['font_for', 'put_text', 'text_size', 'opencv_draws_unicode']


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset:
    from matplotlib.ft2font import FT2Font
    try:
        return frozenset(FT2Font(path).get_charmap())
    except Exception:  # unreadable font file
        return frozenset()


@functools.lru_cache(maxsize=None)
def _default_font() -> str:
    from matplotlib.font_manager import FontProperties, findfont
    return findfont(FontProperties(family=['sans-serif']))


@functools.lru_cache(maxsize=4096)
def font_for(text: str) -> Optional[str]:
    """Path of a font matplotlib can draw all of ``text`` with: its default sans-serif font when that covers it,
    else the first installed font that does; None when no installed font does."""
    need = {ord(c) for c in text if not c.isspace()}
    default = _default_font()
    if need <= _charmap(default):
        return default
    from matplotlib.font_manager import fontManager
    for entry in fontManager.ttflist:
        if 'lastresort' in entry.fname.lower():  # matplotlib's placeholder font: a box for every code point
            continue
        if need <= _charmap(entry.fname):
            return entry.fname
    return None


def opencv_draws_unicode() -> bool:
    """OpenCV >= 5 renders non-ASCII text with ``putText``; 4.x draws "?"."""
    return int(cv2.__version__.split('.')[0]) >= 5


_WARNED = set()


def _warn_once(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg)


def text_size(text: str, height: int) -> Tuple[int, int, int]:
    """(width, height, baseline) in pixels of ``text`` drawn by :func:`put_text` with glyph height ``height``."""
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, max(int(height), 1), 1)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    return w, h, base


def put_text(img: np.ndarray, text: str, org: Sequence[float], height: int, color: Tuple[int, int, int],
             background: Optional[Tuple[Tuple[int, int, int], float]] = None, valign: str = 'top',
             halign: str = 'left') -> np.ndarray:
    """Draw ``text`` on ``img`` (H, W, 3) uint8 in place with OpenCV; ``org`` = (x, y) anchored per
    ``valign`` ('top' / 'center' / 'baseline' / 'bottom') and ``halign`` ('left' / 'center' / 'right');
    ``background`` = (colour, alpha) fills the text's box (padding 2 px) first."""
    if not text.isascii() and not opencv_draws_unicode():
        _warn_once(f'OpenCV {cv2.__version__} draws non-ASCII text as "?": install a font with these glyphs for '
                   'matplotlib (e.g. Debian fonts-noto-cjk) or OpenCV >= 5')
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, max(int(height), 1), 1)
    thick = 1 if height < 24 else 2
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = float(org[0]), float(org[1])
    x -= {'left': 0, 'center': w / 2, 'right': w}.get(halign, 0)
    top = {'top': y, 'center': y - h / 2, 'baseline': y - h, 'bottom': y - h - base}.get(valign, y)
    x, top = int(round(x)), int(round(top))
    if background is not None:
        colour, alpha = background
        y0, y1 = max(top - 2, 0), min(top + h + base + 2, img.shape[0])
        x0, x1 = max(x - 2, 0), min(x + w + 2, img.shape[1])
        if y1 > y0 and x1 > x0:
            region = img[y0:y1, x0:x1].astype(np.float32)
            img[y0:y1, x0:x1] = (region * (1 - alpha) + np.asarray(colour, np.float32) * alpha).round().astype(
                img.dtype)
    cv2.putText(img, text, (x, top + h), cv2.FONT_HERSHEY_SIMPLEX, scale, tuple(int(c) for c in color), thick,
                cv2.LINE_AA)
    return img
