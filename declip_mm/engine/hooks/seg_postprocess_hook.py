"""Logs what the segmentation post-processing steps skipped, once at the end of a test / val run (all ranks)."""
from mmengine.dist import all_gather_object, is_distributed
from mmengine.hooks import Hook

from declip_mm.registry import HOOKS, SEG_HOOKS, register_everywhere


def _steps(model):
    from declip_mm.models.task_modules.seg_postprocess import SkipCounter
    model = getattr(model, 'module', model)
    return [m for m in model.modules() if isinstance(m, SkipCounter)]


@register_everywhere(HOOKS, SEG_HOOKS)
class SegPostProcessReportHook(Hook):
    """Before a test / val run reset every ``SegPostProcessor``'s counts; after it log, per step, how many images
    it saw and which it skipped (e.g. ``MaskVote(on_missing='skip')`` without a usable mask file).

    Args:
        max_listed: at most this many skipped images are named in the log (all are counted).
    """
    priority = 'LOW'

    def __init__(self, max_listed: int = 20):
        self.max_listed = max_listed

    def _reset(self, runner):
        for s in _steps(runner.model):
            s.reset_report()

    def _report(self, runner, what):
        reports = [s.report() for s in _steps(runner.model)]
        if is_distributed():
            gathered = all_gather_object(reports)
            reports = [dict(name=r[0]['name'], seen=sum(x['seen'] for x in r),
                            skipped=[f for x in r for f in x['skipped']]) for r in zip(*gathered)]
        for r in reports:
            n = len(r['skipped'])
            msg = f'{r["name"]} ({what}): {r["seen"]} image(s), {n} skipped'
            if n:
                listed = r['skipped'][:self.max_listed]
                msg += ':\n  ' + '\n  '.join(listed) + (f'\n  ... and {n - len(listed)} more' if n > len(listed)
                                                       else '')
            runner.logger.log(30 if n else 20, msg)

    def before_test_epoch(self, runner) -> None:
        self._reset(runner)

    def before_val_epoch(self, runner) -> None:
        self._reset(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'test')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'val')
