"""Test (evaluate) a checkpoint with a declip_mm / mmdet / mmseg config.

    python tools/test.py CONFIG [CHECKPOINT] [--work-dir DIR] [--out results.pkl] [--cfg-options k=v ...]
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import declip_mm  # noqa: F401  (registers everything)
from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test (and evaluate) a model')
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='checkpoint file (optional for training-free models)')
    p.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    p.add_argument('--out', help='dump predictions to a pickle file (DumpResults)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings in the config, key=value pairs')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.checkpoint is not None:
        cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), '--out must be a .pkl file'
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    with mmengine_checkpoint_loading():  # the checkpoint is read with weights_only=True
        metrics = runner.test()
    return metrics


if __name__ == '__main__':
    main()
