"""FLOPs and model-FLOPs utilisation (MFU) for the benchmarks.

FLOPs are counted analytically by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and fused
attention, forward and backward as executed); element-wise work is not counted, as usual for MFU. MFU = achieved
FLOP/s / the device's dense bf16 tensor-core peak:

=====================  =============
GPU                    dense bf16 TF
=====================  =============
A100 (SXM / PCIe)      312
H100 SXM / H200 SXM    989.4
H100 NVL / H200 NVL    835
H100 PCIe              756
L40S                   362.05
RTX 4090               165.2
=====================  =============

(vendor data sheets, dense = without 2:4 sparsity; the RTX 4090 figure is with fp32 accumulation, which is what
PyTorch's bf16 matmuls use). Any other device: ``--peak-tflops``.
"""
from typing import Callable, Optional, Tuple

import torch

# (substring of torch.cuda.get_device_name(), dense bf16 peak in TFLOP/s); the first match wins
PEAK_BF16_TFLOPS = (
    ('H200 NVL', 835.0),
    ('H100 NVL', 835.0),
    ('H100 PCIe', 756.0),
    ('H200', 989.4),
    ('H100', 989.4),
    ('A100', 312.0),
    ('L40S', 362.05),
    ('4090', 165.2),
)


def add_peak_argument(parser) -> None:
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help='dense bf16 peak of the device in TFLOP/s for MFU (default: from the table of '
                             'A100 / H100 / H200 / L40S / RTX 4090; other devices report no MFU without it)')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP-counting pass')


def peak_tflops(device_name: str, override: Optional[float] = None) -> Optional[float]:
    """Dense bf16 peak (TFLOP/s) of ``device_name`` from the table, ``override`` if given, else None."""
    if override:
        return float(override)
    for key, tf in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tf
    return None


def _cpu_sdpa_formulas() -> dict:
    """FLOP formulas for the CPU fused-attention kernels, which FlopCounterMode does not know (it would count the
    attention of every CPU benchmark as 0): the same counts as its CUDA flash / efficient kernels."""
    from torch.utils import flop_counter as fc
    aten = torch.ops.aten

    def fwd(q, k, v, *args, out_shape=None, **kwargs):
        return fc.sdpa_flop_count(q, k, v)

    def bwd(grad_out, q, k, v, *args, out_shape=None, **kwargs):
        return fc.sdpa_backward_flop_count(grad_out, q, k, v)

    return {aten._scaled_dot_product_flash_attention_for_cpu: fwd,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: bwd}


def count_flops(fn: Callable, *args, **kwargs) -> Tuple[object, int]:
    """Run ``fn(*args, **kwargs)`` under ``FlopCounterMode``; returns (its result, FLOPs counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False, custom_mapping=_cpu_sdpa_formulas()) as counter:
        out = fn(*args, **kwargs)
    return out, int(counter.get_total_flops())


def mfu(flops_per_image: Optional[float], images_per_s: float, peak: Optional[float]) -> Optional[float]:
    """Model-FLOPs utilisation in [0, 1]: flops_per_image * images_per_s / (peak TFLOP/s * 1e12)."""
    if not flops_per_image or not peak or not images_per_s:
        return None
    return flops_per_image * images_per_s / (peak * 1e12)


def device_name(device) -> str:
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return device.type


def format_flops(f: Optional[float]) -> str:
    return 'n/a' if f is None else f'{f / 1e9:,.1f} GFLOP'
