from .ov_seg_visualizer import OVSegLocalVisualizer, draw_legend

__all__ = ['OVSegLocalVisualizer', 'draw_legend']
