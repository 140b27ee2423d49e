"""Helpers to run the tiny distillation config with mmengine's Runner inside tests."""
import copy
import itertools
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

TINY_CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'declip', 'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py')
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


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


class CaptureInit(Hook):
    """Student state at the start of training (to check that weights moved)."""
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        self.model = _unwrap(runner.model)
        self.state = {k: v.detach().clone() for k, v in self.model.student.state_dict().items()}


class CaptureFirstGrads(Hook):
    """The (DDP-averaged) gradients seen by the optimizer at its first step, by parameter name."""
    priority = 'VERY_HIGH'

    def before_train(self, runner):
        self.grads = None
        names = {id(p): n for n, p in _unwrap(runner.model).named_parameters()}

        def pre_step(optimizer, args, kwargs):
            if self.grads is None:
                self.grads = {names[id(p)]: p.grad.detach().clone() for g in optimizer.param_groups
                              for p in g['params'] if p.grad is not None}
        runner.optim_wrapper.optimizer.register_step_pre_hook(pre_step)


class NaNAt(Hook):
    """Makes the VFM features of the image whose path ends with ``name`` NaN at iteration ``at`` (every iteration
    if ``at`` is None), so that this step's context loss is NaN on the rank that holds it."""
    priority = 'VERY_HIGH'

    def __init__(self, name, at=None):
        self.name, self.at, self.rows = name, at, []

    def before_train(self, runner):
        def poison(module, args, out):
            if self.rows:
                out = out.clone()
                out[self.rows] = float('nan')
            return out
        _unwrap(runner.model).vfm.register_forward_hook(poison)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        paths = data_batch['data_samples']['img_path']
        hit = self.at is None or runner.iter == self.at
        self.rows = [i for i, p in enumerate(paths) if hit and p.endswith(self.name)]
