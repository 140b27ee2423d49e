from . import backbones, text  # noqa: F401
from . import distillers, vfm, losses  # noqa: F401
from . import layers, task_modules  # noqa: F401
from . import detectors, roi_heads, dense_heads, necks  # noqa: F401
from . import task_modules  # noqa: F401
from . import segmentors, decode_heads  # noqa: F401
