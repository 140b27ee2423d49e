from . import region_cls_metric  # noqa: F401,E402  (distillation region classification)
from . import seg_metric  # noqa: F401
from . import ov_coco_metric  # noqa: F401,E402  (OV-COCO base/novel AP50)
from . import lvis_metric  # noqa: F401,E402  (mmdet's LVISMetric under numpy 2)
