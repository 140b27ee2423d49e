"""Registries of the ``declip_mm`` scope, plus the mmdet / mmseg registries we also register into.

``declip_mm`` registries are children of mmengine's roots, so configs with ``default_scope='declip_mm'``
(the distillation job) find both our modules and mmengine's.  Components meant for detection configs
are also registered into mmdet's registries, and those for segmentation configs into mmseg's, so that
``custom_imports=dict(imports=['declip_mm'])`` is all a stock mmdet / mmseg config needs.
"""
from mmengine import registry as _root
from mmengine.registry import Registry

# Every mmengine root registry gets a declip_mm child (as mmdet / mmseg do), so configs with
# default_scope='declip_mm' resolve mmengine's loops, optimizers, ... without scope-search warnings.
RUNNERS = Registry('runner', parent=_root.RUNNERS, locations=['declip_mm.engine'])
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=_root.RUNNER_CONSTRUCTORS, locations=['declip_mm.engine'])
LOOPS = Registry('loop', parent=_root.LOOPS, locations=['declip_mm.engine'])
HOOKS = Registry('hook', parent=_root.HOOKS, locations=['declip_mm.engine'])
LOG_PROCESSORS = Registry('log_processor', parent=_root.LOG_PROCESSORS, locations=['declip_mm.engine'])
OPTIMIZERS = Registry('optimizer', parent=_root.OPTIMIZERS, locations=['declip_mm.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=_root.OPTIM_WRAPPERS, locations=['declip_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=_root.OPTIM_WRAPPER_CONSTRUCTORS, locations=['declip_mm.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=_root.PARAM_SCHEDULERS, locations=['declip_mm.engine'])
DATASETS = Registry('dataset', parent=_root.DATASETS, locations=['declip_mm.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=_root.DATA_SAMPLERS, locations=['declip_mm.datasets'])
TRANSFORMS = Registry('transform', parent=_root.TRANSFORMS, locations=['declip_mm.datasets.transforms'])
MODELS = Registry('model', parent=_root.MODELS, locations=['declip_mm.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=_root.MODEL_WRAPPERS, locations=['declip_mm.models'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=_root.WEIGHT_INITIALIZERS, locations=['declip_mm.models'])
TASK_UTILS = Registry('task util', parent=_root.TASK_UTILS, locations=['declip_mm.models'])
METRICS = Registry('metric', parent=_root.METRICS, locations=['declip_mm.evaluation'])
EVALUATOR = Registry('evaluator', parent=_root.EVALUATOR, locations=['declip_mm.evaluation'])
VISUALIZERS = Registry('visualizer', parent=_root.VISUALIZERS, locations=['declip_mm.engine'])
VISBACKENDS = Registry('vis_backend', parent=_root.VISBACKENDS, locations=['declip_mm.engine'])
FUNCTIONS = Registry('function', parent=_root.FUNCTIONS, locations=['declip_mm.engine'])

from mmdet.registry import DATASETS as DET_DATASETS  # noqa: E402
from mmdet.registry import HOOKS as DET_HOOKS  # noqa: E402
from mmdet.registry import METRICS as DET_METRICS  # noqa: E402
from mmdet.registry import MODELS as DET_MODELS  # noqa: E402
from mmdet.registry import TRANSFORMS as DET_TRANSFORMS  # noqa: E402
from mmseg.registry import DATASETS as SEG_DATASETS  # noqa: E402
from mmseg.registry import HOOKS as SEG_HOOKS  # noqa: E402
from mmseg.registry import METRICS as SEG_METRICS  # noqa: E402
from mmseg.registry import MODELS as SEG_MODELS  # noqa: E402
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS  # noqa: E402


def register_everywhere(*registries):
    """Class decorator registering a module into several registries under its class name.

    Example: ``@register_everywhere(MODELS, DET_MODELS, SEG_MODELS)``.
    """
    def deco(cls):
        for reg in registries:
            reg.register_module(module=cls)
        return cls
    return deco
