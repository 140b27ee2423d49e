"""Shared pieces of the benchmark sub-commands: config loading and memory probes."""
import torch


def add_config_arguments(parser) -> None:
    """``CONFIG`` plus mmengine-style ``--cfg-options key=value ...``."""
    from mmengine.config import DictAction
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config settings, key=value pairs (as in tools/train.py)')


def load_config(path: str, cfg_options=None):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _proc_status_mb(field: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float('nan')


def reset_peak(device) -> None:
    """Reset the peak-memory counter: CUDA allocator stats, or the process's VmHWM (Linux clear_refs 5)."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def current_mb(device) -> float:
    """Memory in use now: CUDA allocated, or the process's resident set (VmRSS) on CPU."""
    if str(device).startswith('cuda'):
        return torch.cuda.memory_allocated() / 2**20
    return _proc_status_mb('VmRSS:')


def peak_mb(device) -> float:
    """Peak since ``reset_peak``: CUDA max allocated, or the process's peak resident set (VmHWM) on CPU."""
    if str(device).startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return _proc_status_mb('VmHWM:')
