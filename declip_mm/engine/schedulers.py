"""The cosine half of the official DeCLIP LR schedule, on mmengine's ``CosineAnnealingLR``.

The official schedule (open_clip training code) is ``lr * (step + 1) / W`` for ``step < W`` (mmengine's ``LinearLR``,
``start_factor=1/W``, ``end=W``), then ``0.5 * (1 + cos(pi * (step - W) / (T - W))) * lr`` until the last iteration
``T - 1`` (``CosineAnnealingLR``, ``eta_min=0``, from iteration ``W`` to ``T``).  ``W`` is given in iterations but ``T``
only in epochs, and mmengine's epoch -> iteration conversion can only begin a scheduler at a whole epoch; this
subclass adds ``warmup_iters`` to the converted ``begin``.  The values are mmengine's.
"""
from mmengine.optim.scheduler import CosineAnnealingLR
from mmengine.optim.scheduler.param_scheduler import INF

from declip_mm.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class DeCLIPCosineLR(CosineAnnealingLR):
    """``dict(type='DeCLIPCosineLR', warmup_iters=1000, eta_min=0.0, begin=0, end=max_epochs, by_epoch=True,
    convert_to_iter_based=True)``: cosine from iteration ``begin * epoch_length + warmup_iters`` to
    ``end * epoch_length``."""

    @classmethod
    def build_iter_from_epoch(cls, *args, warmup_iters: int = 0, begin=0, end=INF, by_epoch=True, epoch_length=None,
                              **kwargs):
        if not (by_epoch and epoch_length and end != INF):
            raise ValueError('DeCLIPCosineLR needs by_epoch=True, convert_to_iter_based=True and a finite `end`')
        begin = int(begin * epoch_length) + int(warmup_iters)
        end = max(int(end * epoch_length), begin + 1)  # a run shorter than the warmup never reaches the cosine
        return cls(*args, begin=begin, end=end, T_max=end - begin, by_epoch=False, **kwargs)
