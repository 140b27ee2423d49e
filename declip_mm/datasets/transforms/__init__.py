from . import grid_crops  # noqa: F401,E402  (distillation transforms)
from . import detr_resize, pseudo_boxes  # noqa: F401,E402  (OV-DQUO detection transforms)
from . import resize  # noqa: F401,E402  (ResizeAtLeastOnePixel)
