from . import transforms  # noqa: F401
from . import distill_dataset, synthetic_images  # noqa: F401,E402  (distillation data)
from . import ov_segmentation, synthetic_seg  # noqa: F401
from . import ov_detection, pseudo_labels, samplers, synthetic_det  # noqa: F401,E402  (open-vocabulary detection)
