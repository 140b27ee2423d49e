"""Checkpoints are read with weights_only=True only (allow-list of exactly what mmengine run-state files need),
bad files give errors naming them, and ``--resume`` falls back past a truncated checkpoint."""
import itertools
import logging
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from torch.utils.data import Dataset

from declip_mm.utils.run_checkpoints import (CheckpointLoadError, load_checkpoint_file, mmengine_checkpoint_loading,
                                             resolve_resume_checkpoint)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@MODELS.register_module(name='_CkptToyModel', force=True)
class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.lin(torch.stack(x) if isinstance(x, list) else x).pow(2).mean())


@DATASETS.register_module(name='_CkptToyData', force=True)
class ToyData(Dataset):
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.full((2, ), float(i)))


_RUNS = itertools.count()


def _cfg(work_dir, epochs):
    return dict(
        model=dict(type='_CkptToyModel'), work_dir=str(work_dir), experiment_name=f'ckpt_toy_{next(_RUNS)}',
        train_dataloader=dict(dataset=dict(type='_CkptToyData'), sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=2, collate_fn=dict(type='default_collate'), num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)), train_cfg=dict(by_epoch=True, max_epochs=epochs),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)), randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')), log_level='WARNING')


def _train(work_dir, epochs):
    from mmengine.config import Config
    from mmengine.runner import Runner
    runner = Runner.from_cfg(Config(_cfg(work_dir, epochs)))
    runner.train()
    return runner


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A real mmengine run: epoch_1.pth, epoch_2.pth (optimizer, schedulers, message hub) and last_checkpoint."""
    work = tmp_path_factory.mktemp('run')
    _train(work, 2)
    return work


def _spy_torch_load(monkeypatch):
    calls = []
    real = torch.load

    def spy(*a, **k):
        calls.append(k.get('weights_only'))
        return real(*a, **k)
    monkeypatch.setattr(torch, 'load', spy)
    return calls


def test_mmengine_run_state_checkpoint_loads_with_weights_only(run_dir, monkeypatch):
    path = str(run_dir / 'epoch_2.pth')
    with pytest.raises(pickle.UnpicklingError):  # what torch alone does with mmengine's own file
        torch.load(path, weights_only=True)
    calls = _spy_torch_load(monkeypatch)
    ckpt = load_checkpoint_file(path, map_location='cpu')
    assert calls == [True]
    assert ckpt['meta']['epoch'] == 2 and set(ckpt) >= {'state_dict', 'optimizer', 'param_schedulers', 'message_hub'}
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.mean() == pytest.approx(float(np.mean(buf.data[0])))
    assert buf.statistics('max') == buf.data[0].max()  # the pickled HistoryBuffer.max resolved to the real one


def test_loading_context_is_local_to_the_block(run_dir):
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    assert CheckpointLoader._schemes[''] is load_from_local
    safe_before = set(torch.serialization.get_safe_globals())
    with mmengine_checkpoint_loading():
        ckpt = CheckpointLoader.load_checkpoint(str(run_dir / 'epoch_1.pth'), map_location='cpu')
        assert ckpt['meta']['epoch'] == 1
    assert CheckpointLoader._schemes[''] is load_from_local
    assert set(torch.serialization.get_safe_globals()) == safe_before


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling with the full unpickler would create the marker file
        return exec, (f'open({self.marker!r}, "w").write("pwned")', )


class _GetattrEscape:
    def __reduce__(self):  # the getattr stand-in must resolve nothing but HistoryBuffer's statistics methods
        return getattr, (HistoryBuffer, '__init__')


@pytest.mark.parametrize('payload', ['exec', 'getattr'])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch, payload):
    marker = tmp_path / 'marker'
    obj = _RunsCode(str(marker)) if payload == 'exec' else _GetattrEscape()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': {'x': obj}}, path)
    calls = _spy_torch_load(monkeypatch)
    with pytest.raises(CheckpointLoadError, match=r'evil\.pth.*(exec|getattr)'):
        load_checkpoint_file(str(path))
    assert calls == [True] and not marker.exists()  # never retried with weights_only=False
    with mmengine_checkpoint_loading():  # the same through mmengine's loader (load_from, tools/test.py CKPT)
        from mmengine.runner.checkpoint import CheckpointLoader
        with pytest.raises(CheckpointLoadError, match='evil.pth'):
            CheckpointLoader.load_checkpoint(str(path))
    assert not marker.exists() and set(calls) == {True}


@pytest.mark.parametrize('kind', ['truncated', 'random'])
def test_unreadable_file_error_names_the_file(tmp_path, run_dir, kind):
    data = (run_dir / 'epoch_1.pth').read_bytes()
    path = tmp_path / f'{kind}.pth'
    path.write_bytes(data[:len(data) // 2] if kind == 'truncated' else np.random.default_rng(0).bytes(100))
    what = 'truncated' if kind == 'truncated' else 'not a torch checkpoint'
    with pytest.raises(CheckpointLoadError, match=f'{kind}.pth: unreadable checkpoint, {what}'):
        load_checkpoint_file(str(path))


def _copy_run(src, dst, truncate=()):
    dst.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        data = (src / name).read_bytes()
        (dst / name).write_bytes(data[:1000] if name in truncate else data)
        os.utime(dst / name, (1000 + int(name[6]), 1000 + int(name[6])))
    (dst / 'last_checkpoint').write_text(str(dst / 'epoch_2.pth'))


def test_resume_falls_back_past_a_truncated_last_checkpoint(tmp_path, run_dir, caplog):
    work = tmp_path / 'w'
    _copy_run(run_dir, work, truncate=('epoch_2.pth', ))
    with caplog.at_level(logging.WARNING):
        assert resolve_resume_checkpoint(str(work), logger=logging.getLogger('t')) == str(work / 'epoch_1.pth')
    assert 'epoch_2.pth' in caplog.text and 'previous complete checkpoint' in caplog.text
    good = tmp_path / 'g'
    _copy_run(run_dir, good)
    assert resolve_resume_checkpoint(str(good)) == str(good / 'epoch_2.pth')
    bad = tmp_path / 'b'
    _copy_run(run_dir, bad, truncate=('epoch_1.pth', 'epoch_2.pth'))
    with pytest.raises(CheckpointLoadError, match=r'no complete checkpoint.*epoch_2\.pth.*epoch_1\.pth.*Delete'):
        resolve_resume_checkpoint(str(bad))
    empty = tmp_path / 'e'
    empty.mkdir()
    with caplog.at_level(logging.WARNING):
        assert resolve_resume_checkpoint(str(empty), logger=logging.getLogger('t')) is None
    assert 'starts from scratch' in caplog.text


def test_train_tool_resume_uses_previous_complete_checkpoint(tmp_path, run_dir):
    """tools/train.py --resume: last checkpoint truncated -> resumes from epoch 1 (not from scratch), reads it with
    weights_only=True, and trains on to epoch 3."""
    from mmengine.config import Config
    work = tmp_path / 'w'
    _copy_run(run_dir, work, truncate=('epoch_2.pth', ))
    cfg_path = tmp_path / 'toy_cfg.py'
    Config(_cfg(work, 3)).dump(str(cfg_path))
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import train as train_tool
    finally:
        sys.path.pop(0)
    runner = train_tool.main([str(cfg_path), '--work-dir', str(work), '--resume'])
    assert runner.epoch == 3 and runner.iter == 12
    assert os.stat(work / 'epoch_1.pth').st_mtime == 1001  # epoch 1 was not trained (and saved) again
    assert load_checkpoint_file(str(work / 'epoch_2.pth'))['meta']['epoch'] == 2  # epoch 2 re-trained and saved
    ref = _train(tmp_path / 'ref', 3)  # the same 3 epochs without interruption
    for k, v in ref.model.state_dict().items():
        assert torch.allclose(v, runner.model.state_dict()[k], atol=1e-6), k


def test_import_changes_nothing_global():
    code = ('import numpy as np, torch\n'
            'import mmdet.evaluation, mmseg.evaluation, open_clip, timm  # the libraries we build on, first\n'
            'from mmengine.runner.checkpoint import CheckpointLoader\n'
            'before = dict(CheckpointLoader._schemes)\n'
            'safe_before = set(torch.serialization.get_safe_globals())\n'
            'import declip_mm\n'
            'assert "float" not in np.__dict__, "np.float alias leaked"\n'
            'assert CheckpointLoader._schemes == before, "CheckpointLoader patched"\n'
            'assert set(torch.serialization.get_safe_globals()) == safe_before, "torch safe globals changed"\n')
    res = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, 'PYTHONPATH': REPO})
    assert res.returncode == 0, res.stderr[-2000:]
