"""Train a declip_mm / mmdet / mmseg config (mmdet's tools/train.py, with declip_mm always imported).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG NUM_GPUS [args]      # torchrun, --launcher pytorch
"""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

import declip_mm  # noqa: F401  (registers everything)
from declip_mm.engine.run_setup import own_visualizer_name
from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading, resolve_resume_checkpoint


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a model')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='the dir to save logs and models')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision: bf16 autocast where the GPU supports it, else fp16 with loss scaling')
    p.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from the given checkpoint, or from the latest one in work_dir if no path is given')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings in the config, key=value pairs, e.g. train_dataloader.batch_size=2')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    own_visualizer_name(cfg)
    if 'optim_wrapper' in cfg:  # --amp: bf16 where the GPU has it, else fp16 + loss scaling (declip_mm.engine.amp)
        from declip_mm.engine.amp import resolve_amp
        resolve_amp(cfg, force=args.amp)
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or "auto_scale_lr.base_batch_size" in your config.')
    if args.resume == 'auto':
        # mmengine's auto-resume takes work_dir/last_checkpoint blindly (a truncated file fails the job) and starts
        # from scratch without a word when there is none: pick the newest complete checkpoint ourselves.
        cfg.resume = True
        cfg.load_from = resolve_resume_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
        if cfg.load_from is None:
            cfg.resume = False
            if not osp.isdir(cfg.work_dir):
                print_log(f'--resume: {cfg.work_dir} does not exist; training starts from scratch',
                          logger='current', level=logging.WARNING)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with mmengine_checkpoint_loading():  # load_from / --resume read with weights_only=True
        cfg = build_cfg(args)
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            from mmengine.registry import RUNNERS
            runner = RUNNERS.build(cfg)
        runner.train()
    return runner


if __name__ == '__main__':
    main()
