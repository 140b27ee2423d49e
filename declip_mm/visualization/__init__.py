from .ov_det_visualizer import OVDetLocalVisualizer
from .ov_seg_visualizer import OVSegLocalVisualizer, draw_legend
from .text import font_for, put_text

__all__ = ['OVDetLocalVisualizer', 'OVSegLocalVisualizer', 'draw_legend', 'font_for', 'put_text']
