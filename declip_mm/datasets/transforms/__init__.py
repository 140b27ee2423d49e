from . import grid_crops  # noqa: F401,E402  (distillation transforms)
