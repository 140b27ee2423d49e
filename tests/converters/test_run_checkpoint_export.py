"""declip_mm_to_declip.py on a REAL distillation run checkpoint (``work_dir/epoch_k.pth`` written by mmengine's Runner:
message hub with HistoryBuffers, optimizer, ``student.*`` / ``teacher.*`` / ``vfm.*``), ``--prefix student.``.

The run's ``student.*`` is the raw student; ``backbone_epoch_k.pth`` (and DeCLIP's ``epoch_k.pt``) hold
``alpha * student + (1 - alpha) * initial``.  The default export reproduces the latter, checked against an
independent computation from the CLIP file the run started from.
"""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from .conftest import REPO, converter
from .test_declip_export import eva_release_clip

TINY = osp.join(REPO, 'configs', 'declip', 'declip_tiny-eva02_tiny-dinov2_1xb4-3e_synthetic-128.py')


@pytest.fixture(scope='module')
def distill_run(tmp_path_factory):
    """One epoch (2 iterations) of the tiny distillation config from an EVA-CLIP release file."""
    from mmengine.runner import Runner
    from declip_mm.utils.run_checkpoints import mmengine_checkpoint_loading
    work = tmp_path_factory.mktemp('distill_export')
    clip = eva_release_clip(seed=3)
    clip_path = str(work / 'EVA02_CLIP_tiny.pt')
    torch.save(clip, clip_path)
    cfg = Config.fromfile(TINY)
    cfg.work_dir = str(work / 'run')
    cfg.experiment_name = 'export_run'
    cfg.train_dataloader.dataset.data_root = str(work / 'data')
    cfg.train_dataloader.dataset.synthetic = dict(num_images=8, seed=0)
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler[-1].end = 1
    cfg.optim_wrapper.optimizer.lr = 1e-2  # weights move visibly in 2 iterations
    cfg.model.student.checkpoint = clip_path
    cfg.custom_hooks = [dict(type='DistillResumeHook'), dict(type='DeCLIPEnsembleHook'),
                        dict(type='DeCLIPExportHook', interval=1)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=True)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1000)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    with mmengine_checkpoint_loading():
        runner.train()
    return dict(run=osp.join(cfg.work_dir, 'epoch_1.pth'), export=osp.join(cfg.work_dir, 'backbone_epoch_1.pth'),
                clip=clip_path, clip_sd=clip, work=work)


def _cli(argv, monkeypatch, capsys):
    mod = converter('declip_mm_to_declip')
    monkeypatch.setattr(sys, 'argv', [mod.__file__] + argv)
    mod.main()
    return capsys.readouterr().out


def _visual(path):
    sd = torch.load(path, weights_only=True)['state_dict']
    return {k: v for k, v in sd.items() if k.startswith('visual.') and 'rope' not in k}


def test_run_checkpoint_is_a_real_mmengine_file(distill_run):
    import pickle
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):  # torch alone refuses it
        torch.load(distill_run['run'], weights_only=True)


def test_student_prefix_exports_the_ensemble_like_backbone_epoch(distill_run, monkeypatch, capsys):
    d = distill_run
    dst, ref = str(d['work'] / 'from_run.pt'), str(d['work'] / 'from_export.pt')
    out = _cli([d['run'], d['clip'], dst, '--prefix', 'student.'], monkeypatch, capsys)
    assert 'ensemble 0.7 * student + 0.3 * initial' in out
    _cli([d['export'], d['clip'], ref], monkeypatch, capsys)
    got, want = _visual(dst), _visual(ref)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    # independent: 0.7 * the raw student (renamed to release names) + 0.3 * the CLIP file's own weights
    raw = str(d['work'] / 'raw.pt')
    out = _cli([d['run'], d['clip'], raw, '--prefix', 'student.', '--raw'], monkeypatch, capsys)
    assert 'raw student' in out
    raw_sd = _visual(raw)
    moved = max((raw_sd[k] - d['clip_sd'][k]).abs().max().item() for k in raw_sd)
    assert moved > 1e-4  # training changed the student, so raw and ensemble differ
    for k, v in got.items():
        torch.testing.assert_close(v, 0.7 * raw_sd[k] + 0.3 * d['clip_sd'][k].float(), rtol=0, atol=1e-6)
    half = str(d['work'] / 'half.pt')
    _cli([d['run'], d['clip'], half, '--prefix', 'student.', '--alpha', '0.5'], monkeypatch, capsys)
    for k, v in _visual(half).items():
        torch.testing.assert_close(v, 0.5 * raw_sd[k] + 0.5 * d['clip_sd'][k].float(), rtol=0, atol=1e-6)


def test_run_checkpoint_without_alpha_record_asks(distill_run, tmp_path):
    mod = converter('declip_mm_to_declip')
    from _common import ConversionError, load_source
    obj = load_source(distill_run['run'])
    assert obj['meta']['declip_ensemble'] == dict(alpha=0.7, student='raw')
    del obj['meta']['declip_ensemble']  # a run saved before the record existed
    with pytest.raises(ConversionError, match=r'raw student.*--alpha A.*--raw'):
        mod.student_of_run(obj, 'student.')
    sd, note = mod.student_of_run(obj, 'student.', raw=True)
    assert 'raw student' in note
    with pytest.raises(ConversionError, match='distillation run'):
        mod.student_of_run({'state_dict': {'backbone.visual.x': torch.ones(1)}}, 'backbone.', alpha=0.7)


def test_in_checkpoint_ensemble_is_recorded_and_exported_as_stored():
    """DeCLIPEnsembleHook(in_checkpoint=True) writes the ensemble into student.* and records it; the converter then
    takes student.* as it is (applying alpha again would be wrong) and refuses --raw / --alpha."""
    from types import SimpleNamespace
    from declip_mm.engine.hooks.distill_hooks import DeCLIPEnsembleHook
    from _common import ConversionError
    mod = converter('declip_mm_to_declip')
    s, t = torch.full((2, ), 1.0), torch.full((2, ), 0.0)
    ckpt = {'meta': {}, 'state_dict': {'student.visual.w': s, 'teacher.visual.w': t}}
    runner = SimpleNamespace(model=SimpleNamespace(alpha=0.7))
    DeCLIPEnsembleHook(in_checkpoint=True).before_save_checkpoint(runner, ckpt)
    assert ckpt['meta']['declip_ensemble'] == dict(alpha=0.7, student='ensembled')
    torch.testing.assert_close(ckpt['state_dict']['student.visual.w'], torch.full((2, ), 0.7))
    sd, note = mod.student_of_run(ckpt, 'student.')
    assert torch.equal(sd['student.visual.w'], ckpt['state_dict']['student.visual.w']) and 'as stored' in note
    for kw in (dict(raw=True), dict(alpha=0.5)):
        with pytest.raises(ConversionError, match='already stores|not in it'):
            mod.student_of_run(ckpt, 'student.', **kw)
    raw = {'meta': {}, 'state_dict': {'student.visual.w': s.clone(), 'teacher.visual.w': t.clone()}}
    DeCLIPEnsembleHook().before_save_checkpoint(runner, raw)
    assert raw['meta']['declip_ensemble'] == dict(alpha=0.7, student='raw')
    assert torch.equal(raw['state_dict']['student.visual.w'], s)
    sd, note = mod.student_of_run(raw, 'student.')
    torch.testing.assert_close(sd['student.visual.w'], torch.full((2, ), 0.7))
