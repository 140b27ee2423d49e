"""The official per-iteration LR schedule: linear warmup ``lr * (step + 1) / warmup`` then cosine to 0.

``lr(step) = base * (step + 1) / W`` for ``step < W``; else ``0.5 * (1 + cos(pi * (step - W) / (T - W))) * base``
with ``T`` the total number of iterations (``end - begin`` after mmengine's epoch -> iteration conversion).
"""
import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from declip_mm.registry import PARAM_SCHEDULERS


def warmup_cosine_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the base LR at (0-based) iteration ``step``."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span))


class WarmupCosineParamScheduler(_ParamScheduler):
    """Param scheduler with the closed-form warmup + cosine factor (iteration based)."""

    def __init__(self, optimizer, param_name: str = 'lr', warmup_iters: int = 1000, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = False, verbose: bool = False):
        if end == INF:
            raise ValueError('DeCLIPWarmupCosineLR needs a finite `end` (the total number of iterations or '
                             'epochs with convert_to_iter_based=True)')
        self.warmup_iters = int(warmup_iters)
        super().__init__(optimizer, param_name, begin=begin, end=end, last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)

    @classmethod
    def build_iter_from_epoch(cls, *args, begin=0, end=INF, by_epoch=True, epoch_length=None, **kwargs):
        assert by_epoch and epoch_length, 'epoch-based config with a known epoch_length is required'
        begin = int(begin * epoch_length)
        end = int(end * epoch_length) if end != INF else end
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)

    def _get_value(self):
        f = warmup_cosine_factor(self.last_step, self.warmup_iters, self.end - self.begin)
        return [base * f for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class DeCLIPWarmupCosineLR(LRSchedulerMixin, WarmupCosineParamScheduler):
    """LR version: ``dict(type='DeCLIPWarmupCosineLR', warmup_iters=1000, begin=0, end=6, by_epoch=True,
    convert_to_iter_based=True)``."""
