"""Registries of the ``declip_mm`` scope, plus the mmdet / mmseg registries we also register into.

``declip_mm`` registries are children of mmengine's roots, so configs with ``default_scope='declip_mm'``
(the distillation job) find both our modules and mmengine's.  Components meant for detection configs
are also registered into mmdet's registries, and those for segmentation configs into mmseg's, so that
``custom_imports=dict(imports=['declip_mm'])`` is all a stock mmdet / mmseg config needs.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['declip_mm.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['declip_mm.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['declip_mm.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['declip_mm.datasets.transforms'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['declip_mm.evaluation'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['declip_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optim wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, locations=['declip_mm.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=['declip_mm.engine'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['declip_mm.engine'])

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
