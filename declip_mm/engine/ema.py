"""An exponential moving average over the state dict that counts each tensor by an explicit rule, not by how often
the state dict happens to list it."""
import re
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage

from declip_mm.registry import DET_MODELS, MODELS, register_everywhere


@register_everywhere(DET_MODELS, MODELS)
class StateDictEMA(ExponentialMovingAverage):
    """mmengine's ``ExponentialMovingAverage`` (``averaged = (1 - momentum) * averaged + momentum * source`` every
    ``interval`` iterations), updating every tensor **once per step, or ``repeats`` times by name**.

    Why: with ``update_buffers=True`` mmengine walks ``state_dict()``, which lists a tensor shared by several modules
    under each of its names, so such a tensor is averaged once per name and step (decay ``(1 - momentum) ** n``).
    OVDQUO's objectness Linear, shared by the L decoder layers, is listed L times.  OV-DQUO's own EMA walks its own
    state dict in the same way, where the shared class Linear appears 2 L times (``class_embed.*`` and
    ``transformer.decoder.class_embed.*``) and every decoder box MLP twice (``bbox_embed.*`` and
    ``transformer.decoder.bbox_embed.*``): ``repeats`` reproduces exactly that, ``repeats=None`` is the plain
    average (each tensor once per step).

    Args:
        repeats: ``{regex: n}``: a tensor whose first state-dict name matches ``regex`` (``re.match``) is updated
            ``n`` times per step (the first matching pattern counts); all others once.  None: all once.
        Others: as :class:`mmengine.model.ExponentialMovingAverage`.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0002, interval: int = 1,
                 device: Optional[torch.device] = None, update_buffers: bool = False,
                 repeats: Optional[Dict[str, int]] = None) -> None:
        super().__init__(model, momentum=momentum, interval=interval, device=device, update_buffers=update_buffers)
        patterns = [(re.compile(p), int(n)) for p, n in (repeats or {}).items()]
        bad = [n for _, n in patterns if n < 1]
        if bad:
            raise ValueError(f'StateDictEMA: repeats must be >= 1, got {bad}')
        seen = set()
        self.update_counts: Dict[str, int] = {}  # first name of each distinct tensor -> updates per step
        for k, v in self.avg_parameters.items():
            ident = (v.data_ptr(), tuple(v.shape), tuple(v.stride()), v.dtype)
            if v.numel() and ident in seen:
                continue
            seen.add(ident)
            self.update_counts[k] = next((n for p, n in patterns if p.match(k)), 1)
        unused = [p.pattern for p, _ in patterns if not any(p.match(k) for k in self.update_counts)]
        if unused:
            raise ValueError(f'StateDictEMA: repeats pattern(s) {unused} match no tensor of the model')

    def update_parameters(self, model: nn.Module) -> None:
        src = model.state_dict() if self.update_buffers else dict(model.named_parameters())
        if self.steps == 0:
            for k in self.update_counts:
                self.avg_parameters[k].data.copy_(src[k].data)
        elif self.steps % self.interval == 0:
            for k, n in self.update_counts.items():
                p_avg = self.avg_parameters[k]
                if p_avg.dtype.is_floating_point:
                    s = src[k].data.to(p_avg.device)
                    for _ in range(n):
                        self.avg_func(p_avg.data, s, self.steps)
        if not self.update_buffers:
            for b_avg, b_src in zip(self.module.buffers(), model.buffers()):
                b_avg.data.copy_(b_src.data.to(b_avg.device))
        self.steps += 1
