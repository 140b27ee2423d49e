"""Hooks of the DeCLIP distillation job: backbone export, alpha ensemble, resume (data position and counters)."""
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from declip_mm.engine.ensemble import ensemble_checkpoint_state_dict, unwrap
from declip_mm.registry import HOOKS


def _plain(obj):
    """ConfigDict / nested containers -> plain dicts and lists (loadable with ``torch.load(weights_only=True)``)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj) if type(obj) in (list, tuple) else [_plain(v) for v in obj]
    return obj


def export_student(distiller, path: str, alpha: Optional[float] = None, meta: Optional[dict] = None) -> str:
    """Write the (alpha-ensembled) student as a standalone ``DeCLIPViT`` checkpoint via ``export_backbone``."""
    from declip_mm.models.backbones import export_backbone
    alpha = distiller.alpha if alpha is None else float(alpha)
    student = distiller.student
    info = dict(dense_mode=distiller.dense_mode, alpha=alpha, distill_mode=distiller.distill_mode,
                model_overrides=_plain(getattr(student, 'model_overrides', None)))
    info.update(_plain(meta or {}))
    with distiller.ensembled_student(alpha) as student:
        export_backbone(student, path, meta=info)
    return path


@HOOKS.register_module()
class DeCLIPExportHook(Hook):
    """Export the student as a standalone backbone checkpoint every ``interval`` epochs (and at the end).

    The file ``{out_dir}/{filename_tmpl.format(epoch)}`` loads into ``DeCLIPViT(checkpoint=...)`` with no extra keys;
    it records the dense mode; ``alpha`` (default: the distiller's) applies the weight-space ensemble.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1, out_dir: Optional[str] = None, alpha: Optional[float] = None,
                 filename_tmpl: str = 'backbone_epoch_{}.pth', by_epoch: bool = True):
        self.interval = interval
        self.out_dir = out_dir
        self.alpha = alpha
        self.filename_tmpl = filename_tmpl
        self.by_epoch = by_epoch
        self.exported = []

    def _export(self, runner, tag, epoch: int, it: int) -> None:
        """``epoch`` / ``it``: completed epochs / iterations (``backbone_epoch_k.pth`` records ``epoch=k``)."""
        if not is_main_process():
            return
        out_dir = self.out_dir or runner.work_dir
        path = osp.join(out_dir, self.filename_tmpl.format(tag))
        export_student(unwrap(runner.model), path, self.alpha, meta=dict(epoch=epoch, iter=it))
        self.exported.append(path)
        runner.logger.info(f'DeCLIPExportHook: exported the student backbone to {path}')

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            # mmengine calls after_train_epoch before advancing its epoch counter: epoch + 1 epochs are done
            self._export(runner, runner.epoch + 1, epoch=runner.epoch + 1, it=runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.by_epoch and self.every_n_train_iters(runner, self.interval):
            self._export(runner, f'iter_{runner.iter + 1}', epoch=runner.epoch, it=runner.iter + 1)


@HOOKS.register_module()
class DeCLIPEnsembleHook(Hook):
    """The official alpha ensemble around evaluation and (optionally) in the saved training checkpoint.

    * validation runs on ``alpha * student + (1 - alpha) * initial`` (weights swapped back afterwards);
    * ``in_checkpoint=True`` also writes the ensembled student into the runner checkpoint, so a resume restarts
      from the ensembled weights as the official code does; the default False keeps the raw student there so that
      ``--resume`` continues the exact trajectory.
    * the runner checkpoint's ``meta['declip_ensemble']`` records ``alpha`` and whether its ``student.*`` is
      ``'raw'`` or ``'ensembled'`` (``teacher.*`` holds the initial weights).
    """

    priority = 'NORMAL'
    META_KEY = 'declip_ensemble'

    def __init__(self, alpha: Optional[float] = None, in_checkpoint: bool = False):
        self.alpha = alpha
        self.in_checkpoint = in_checkpoint
        self._ctx = None

    def _alpha(self, runner):
        m = unwrap(runner.model)
        return m.alpha if self.alpha is None else self.alpha

    def before_val_epoch(self, runner) -> None:
        m = unwrap(runner.model)
        if self._alpha(runner) < 1 and hasattr(m, 'ensembled_student'):
            self._ctx = m.ensembled_student(self._alpha(runner))
            self._ctx.__enter__()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        alpha = float(self._alpha(runner))
        ensembled = self.in_checkpoint and alpha < 1 and 'state_dict' in checkpoint
        if ensembled:
            checkpoint['state_dict'] = ensemble_checkpoint_state_dict(checkpoint['state_dict'], alpha)
        # what the file's ``student.*`` holds, for tools/model_converters/declip_mm_to_declip.py --prefix student.
        checkpoint.setdefault('meta', {})[self.META_KEY] = dict(alpha=alpha,
                                                                student='ensembled' if ensembled else 'raw')


@HOOKS.register_module()
class DistillResumeHook(Hook):
    """Resume support of the distillation job.

    * mmengine's epoch loop restores the epoch and iteration counters but restarts the epoch's data from its first
      batch; this hook makes ``DistillSampler`` skip the batches already trained in the current epoch;
    * it saves the distiller's counters (``skipped_images`` per epoch, ``nonfinite_steps``) in the training
      checkpoint (key ``declip_distill``) and restores them on resume;
    * at the end of each epoch it logs the unusable images skipped in that epoch (distinct files, all ranks).
    """

    priority = 'LOW'
    CKPT_KEY = 'declip_distill'

    def before_train(self, runner) -> None:
        from mmengine.model import MMDistributedDataParallel
        model = runner.model
        if type(model) is MMDistributedDataParallel and hasattr(unwrap(model), 'distill_train_step'):
            runner.logger.warning(
                "DistillResumeHook: the model wrapper is mmengine's MMDistributedDataParallel; set model_wrapper_cfg="
                "dict(type='declip_mm.DeCLIPDistributedDataParallel') so that steps with a NaN/Inf loss are skipped "
                'instead of applied')
        loader = runner.train_dataloader
        sampler = getattr(loader, 'sampler', None)
        if not hasattr(sampler, 'skip'):
            return
        per_epoch = len(loader)
        done = runner.iter - runner.epoch * per_epoch
        if 0 < done < per_epoch:
            sampler.skip(done * loader.batch_size)
            runner.logger.info(f'DistillResumeHook: skipping the first {done} batches of epoch {runner.epoch}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap(runner.model)
        if hasattr(model, 'counters_state'):
            checkpoint[self.CKPT_KEY] = model.counters_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap(runner.model)
        if self.CKPT_KEY in checkpoint and hasattr(model, 'load_counters_state'):
            model.load_counters_state(checkpoint[self.CKPT_KEY])

    def after_train_epoch(self, runner) -> None:
        skipped = getattr(unwrap(runner.model), 'skipped_images', None)
        if skipped is None:
            return
        files = skipped.get(runner.epoch + 1, [])
        runner.logger.info(f'DistillResumeHook: epoch {runner.epoch + 1}: {len(files)} unusable image(s) skipped '
                           f'(distinct files, all ranks){": " + str(files) if files else ""}')
