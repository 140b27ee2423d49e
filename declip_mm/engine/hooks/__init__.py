from . import distill_hooks, correlation_vis_hook  # noqa: F401,E402  (distillation hooks)
from . import compile_hook  # noqa: F401,E402  (torch.compile of model parts)
from . import seg_postprocess_hook  # noqa: F401,E402  (post-processing skip report)
