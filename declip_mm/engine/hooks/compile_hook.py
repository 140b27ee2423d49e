"""``CompileModulesHook``: ``torch.compile`` named parts of any model (CAT-Seg / F-ViT heads and backbones ...).

    custom_hooks = [dict(type='CompileModulesHook', modules=['backbone', 'decode_head'], compile_cfg=dict())]

Each dotted path is looked up on the (unwrapped) model and compiled in place by
``declip_mm.models.compile.compile_module`` (transformer blocks one by one, other modules whole). The distiller has
its own ``model.compile`` switch for the student and both teachers.
"""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from declip_mm.models.compile import compile_module
from declip_mm.registry import DET_HOOKS, HOOKS, SEG_HOOKS, register_everywhere


@register_everywhere(HOOKS, DET_HOOKS, SEG_HOOKS)
class CompileModulesHook(Hook):
    """Compile ``modules`` (dotted attribute paths of the model) before the run starts.

    Args:
        modules: e.g. ``('backbone', 'decode_head')`` (CAT-Seg) or ``('backbone', 'roi_head')`` (F-ViT).
        compile_cfg: ``torch.compile`` kwargs (``mode``, ``dynamic``, ``backend`` ...).
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules: Sequence[str] = (), compile_cfg: Optional[dict] = None):
        if isinstance(modules, str):
            modules = (modules, )
        self.modules = tuple(modules)
        self.compile_cfg = dict(compile_cfg or {})

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for path in self.modules:
            m = model
            for name in path.split('.'):
                if not hasattr(m, name):
                    raise AttributeError(f'CompileModulesHook: {type(model).__name__} has no part {path!r}')
                m = getattr(m, name)
            n = compile_module(m, self.compile_cfg)
            runner.logger.info(f'CompileModulesHook: compiled {n} module(s) of {path!r}; the first iterations '
                               'are slow while torch.compile traces them')
