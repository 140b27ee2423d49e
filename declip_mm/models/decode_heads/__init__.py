"""Decode heads (mmseg): CAT-Seg's cost-aggregation head."""
from .catseg_head import CATSegHead, catseg_bce_loss, catseg_cost_volume, catseg_select_classes  # noqa: F401

__all__ = ['CATSegHead', 'catseg_bce_loss', 'catseg_cost_volume', 'catseg_select_classes']
