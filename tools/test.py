"""Test (evaluate) a checkpoint with a declip_mm / mmdet / mmseg config (flags as mmdet's / mmseg's tools/test.py).

    python tools/test.py CONFIG [CHECKPOINT] [--work-dir DIR] [--out FILE_OR_DIR] [--show] [--show-dir DIR]
                         [--wait-time S] [--tta] [--cfg-options k=v ...] [--launcher pytorch]

--out: detection configs dump mmdet's ``DumpDetResults`` pickle (``.pkl``); segmentation configs write mmseg's
format (one PNG label map per image into the directory, via ``IoUMetric(format_only=True)``; uint8, so at most 256
classes as in mmseg).  --show-dir: painted predictions (detection: ``DetVisualizationHook.test_out_dir``, relative to
``work_dir/<timestamp>`` unless absolute; segmentation: the visualizer's ``save_dir``, pictures under
``DIR/vis_data/vis_image``, with a legend of the classes present).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.runner import Runner

import declip_mm  # noqa: F401  (registers everything)
from declip_mm.engine.run_setup import own_visualizer_name
from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='checkpoint file (optional for training-free models)')
    p.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    p.add_argument('--out', help='detection: dump predictions to a .pkl (DumpDetResults); segmentation: a '
                   'directory for PNG label maps (mmseg format)')
    p.add_argument('--show', action='store_true', help='show prediction results')
    p.add_argument('--show-dir', help='directory where painted images will be saved')
    p.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    p.add_argument('--tta', action='store_true', help='test-time augmentation (configs with tta_model)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings in the config, key=value pairs')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def task_of(cfg) -> str:
    return dict(mmdet='det', mmseg='seg').get(cfg.get('default_scope'), 'other')


def trigger_visualization_hook(cfg, args, task: str):
    """As mmdet's / mmseg's tools/test.py: turn the config's visualization hook on for --show / --show-dir."""
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise RuntimeError('--show / --show-dir need a visualization hook in default_hooks (DetVisualizationHook '
                           f'or SegVisualizationHook); {args.config} has none')
    vis = hooks['visualization']
    vis['draw'] = True
    if args.show:
        vis['show'] = True
        vis['wait_time'] = args.wait_time
    if task == 'seg':
        vis['interval'] = 1  # one picture per test image, as mmdet's hook draws (mmseg's draws every 50th)
    if task == 'seg' and cfg.get('visualizer', {}).get('type') in ('SegLocalVisualizer', 'mmseg.SegLocalVisualizer'):
        cfg.visualizer.type = 'OVSegLocalVisualizer'  # mmseg's, plus a legend of the names present
    if args.show_dir:
        if task == 'seg':
            cfg.visualizer['save_dir'] = args.show_dir
        else:
            vis['test_out_dir'] = args.show_dir


def apply_tta(cfg, args):
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise SystemExit(f'error: --tta needs tta_model and tta_pipeline in the config; {args.config} defines '
                         'no test-time augmentation')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


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
    task = task_of(cfg)
    own_visualizer_name(cfg)
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args, task)
    if args.tta:
        apply_tta(cfg, args)
    if args.out is not None and task == 'seg':
        # mmseg's --out: PNG label maps written by IoUMetric(format_only=True) next to the real metric
        evaluator = cfg.test_evaluator
        metrics = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
        cfg.test_evaluator = metrics + [dict(type='mmseg.IoUMetric', format_only=True, output_dir=args.out)]
    runner = Runner.from_cfg(cfg)
    if args.out is not None and task != 'seg':
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('error: --out must be a .pkl file for detection configs')
        if task == 'det':
            from mmdet.evaluation import DumpDetResults
            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        else:
            from mmengine.evaluator import DumpResults
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    with mmengine_checkpoint_loading():  # the checkpoint is read with weights_only=True
        metrics = runner.test()
    return metrics


if __name__ == '__main__':
    main()
