from . import grid_crops  # noqa: F401,E402  (distillation transforms)
from . import resize  # noqa: F401,E402  (ResizeAtLeastOnePixel)
