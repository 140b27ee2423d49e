"""Run the embedded default DeCLIP distillation (tiny random CLIP + tiny random VFM on ~100 generated images, CPU),
print the losses at the start and the end, and write the before/after correlation-map picture.

    python tools/run_default_distill.py [--config configs/declip/declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py] [--work-dir DIR] [--out PNG]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import declip_mm  # noqa: E402,F401

DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'declip', 'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py')


class _Losses(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.history = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.history.append({k: float(v.detach()) if hasattr(v, 'detach') else float(v)
                             for k, v in outputs.items() if k.startswith('loss')})


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2
    bar = np.zeros((22, img.shape[1], 3), np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return np.concatenate([bar, img], axis=0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=DEFAULT_CONFIG)
    p.add_argument('--work-dir', default='work_dirs/declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128')
    p.add_argument('--out', default=None, help='PNG path (default: WORK_DIR/correlation_before_after.png)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    import cv2
    from declip_mm.engine.ensemble import unwrap
    from declip_mm.engine.hooks.correlation_vis_hook import correlation_maps, render_correlation_figure

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    runner = Runner.from_cfg(cfg)
    rec = _Losses()
    runner.register_hook(rec)
    sample = runner.train_dataloader.dataset[0]
    before = render_correlation_figure(correlation_maps(unwrap(runner.model), sample))
    from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading
    with mmengine_checkpoint_loading():  # as tools/train.py (a resumed run reads with weights_only=True)
        runner.train()
    after = render_correlation_figure(correlation_maps(unwrap(runner.model), sample))
    first, last = rec.history[0], rec.history[-1]
    tail = rec.history[-5:]
    print('\nDeCLIP embedded default: {} iterations'.format(len(rec.history)))
    for k in first:
        mean_tail = sum(h[k] for h in tail) / len(tail)
        print(f'  {k:18s} start {first[k]:.4f}   end {last[k]:.4f}   (mean of last 5: {mean_tail:.4f}, '
              f'{100 * (1 - mean_tail / first[k]):.0f}% lower)')
    out = args.out or osp.join(args.work_dir, 'correlation_before_after.png')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    w = max(before.shape[1], after.shape[1])
    pad = lambda im: np.pad(im, ((0, 0), (0, w - im.shape[1]), (0, 0)))  # noqa: E731
    fig = np.concatenate([_label(pad(before), 'before training (rows: student context | VFM)'),
                          _label(pad(after), 'after training')], axis=0)
    cv2.imwrite(out, fig[..., ::-1])
    print(f'  correlation maps before/after: {out}')
    return rec.history


if __name__ == '__main__':
    main()
