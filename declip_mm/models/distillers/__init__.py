from .data_preprocessor import DeCLIPDataPreprocessor  # noqa: F401
from .declip_distiller import DISTILL_MODES, DeCLIPDistiller  # noqa: F401
from .trainable import apply_trainable, official_trainable_names  # noqa: F401
from .ddp_wrapper import DeCLIPDistributedDataParallel  # noqa: F401
