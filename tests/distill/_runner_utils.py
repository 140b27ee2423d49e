"""Helpers to run the tiny distillation config with mmengine's Runner inside tests."""
import copy
import itertools
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

TINY_CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'declip', 'tiny_default.py')
_counter = itertools.count()


class RecordLosses(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in outputs.items()})


class CrashAt(Hook):
    """Simulates a killed job right after iteration ``at`` (after the checkpoint hook ran)."""
    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            raise KeyboardInterrupt(f'simulated crash after iteration {self.at}')


def tiny_cfg(work_dir, data_root, *, epochs=None, batch_size=None, grid=None, hooks=('resume', ),
             checkpoint_iters=None, lr=None, num_images=None):
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'test_{next(_counter)}'
    ds = cfg.train_dataloader.dataset
    ds.data_root = data_root
    if num_images is not None:
        ds.synthetic = dict(num_images=num_images, seed=0)
    if grid is not None:
        cfg.train_dataloader.dataset.pipeline[0].grid = grid
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size
    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
        cfg.param_scheduler[-1].end = epochs  # the cosine (epochs); [0] is the iteration warmup
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    names = dict(resume=dict(type='DistillResumeHook'), export=dict(type='DeCLIPExportHook', interval=1),
                 ensemble=dict(type='DeCLIPEnsembleHook'), vis=dict(type='CorrelationVisHook', interval=25))
    cfg.custom_hooks = [copy.deepcopy(names[h]) for h in hooks]
    if checkpoint_iters:
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=checkpoint_iters, by_epoch=False)
    else:
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000, by_epoch=True)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1000)
    cfg.log_level = 'WARNING'
    return cfg


def run(cfg, extra_hooks=()):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    for h in extra_hooks:
        runner.register_hook(h)
    from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading
    with mmengine_checkpoint_loading():  # as tools/train.py: resume reads with weights_only=True
        runner.train()
    return runner


def student_state(runner):
    m = runner.model.module if hasattr(runner.model, 'module') else runner.model
    return {k: v.detach().clone() for k, v in m.student.state_dict().items()}
