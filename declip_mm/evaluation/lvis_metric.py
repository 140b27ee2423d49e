"""mmdet's LVIS metric under numpy 2: PyPI's lvis 0.5.3 still calls ``np.float`` (see ``declip_mm.utils.compat``)."""
from typing import Dict

from mmdet.evaluation.metrics import LVISMetric

from declip_mm.registry import DET_METRICS, METRICS, register_everywhere
from declip_mm.utils.compat import numpy_float_alias


@register_everywhere(DET_METRICS, METRICS)
class OVLVISMetric(LVISMetric):
    """mmdet's ``LVISMetric`` (same arguments and keys, e.g. ``lvis/segm_APr``, the OV-LVIS headline); only its
    evaluation runs with the ``np.float`` alias, which is removed again afterwards."""

    def compute_metrics(self, results: list) -> Dict[str, float]:
        with numpy_float_alias():
            return super().compute_metrics(results)
