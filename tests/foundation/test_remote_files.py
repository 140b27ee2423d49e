"""Weights where users keep them: http(s):// and hf-hub: files are downloaded once into a cache, checked (length,
sha256) before use, and every site that reads a weight file goes through the one resolver.

All network traffic goes to servers these tests start on 127.0.0.1 (http.server in a thread); nothing else is
contacted.  "Offline" is a refused connection on a closed 127.0.0.1 port.
"""
import hashlib
import http.server
import io
import os
import os.path as osp
import socket
import threading

import pytest
import torch

from declip_mm.utils import remote_files
from declip_mm.utils.remote_files import WeightsDownloadError, resolve_file


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}   # path -> (status, body bytes, mode); set per server
    hits = None   # list of request paths

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits.append(self.path)
        status, body, mode = self.routes.get(self.path.split('?')[0], (404, b'not here', 'full'))
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if mode == 'truncate':  # the server dies half-way: fewer bytes than Content-Length, connection closed
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class LocalServer:
    def __init__(self):
        handler = type('H', (_Handler, ), dict(routes={}, hits=[]))
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.routes, self.hits = handler.routes, handler.hits
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f'http://127.0.0.1:{self.httpd.server_address[1]}{path}'

    def serve(self, path, body, status=200, mode='full'):
        self.routes[path] = (status, body, mode)
        return self.url(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    monkeypatch.setenv(remote_files.ENV_CACHE_DIR, str(tmp_path / 'cache'))
    s = LocalServer()
    yield s
    s.close()


def closed_port_url(path='/w.pth'):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}{path}'  # nothing listens there: connection refused, as offline


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def cache_files(tmp_path):
    d = tmp_path / 'cache'
    return sorted(p.name for p in d.iterdir() if not p.name.endswith('.lock')) if d.exists() else []


# ----------------------------------------------------------------------------------------------- the resolver
def test_local_paths_pass_through_unchanged(tmp_path):
    assert resolve_file(str(tmp_path / 'a.pth')) == str(tmp_path / 'a.pth')
    assert resolve_file('~/x.pt') == osp.expanduser('~/x.pt')


def test_download_once_into_the_cache(server, tmp_path):
    body = torch_bytes({'w': torch.arange(5.)})
    url = server.serve('/dir/model.pth', body)
    path = resolve_file(url + '?download=true', progress=False)  # query strings are not part of the name
    assert path == str(tmp_path / 'cache' / 'model.pth') and open(path, 'rb').read() == body
    assert resolve_file(url, progress=False) == path
    assert len(server.hits) == 1  # the second call did not contact the server
    assert cache_files(tmp_path) == ['model.pth']


def test_default_cache_is_torch_hub_checkpoints(monkeypatch, tmp_path):
    monkeypatch.delenv(remote_files.ENV_CACHE_DIR, raising=False)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    assert remote_files.cache_dir() == str(tmp_path / 'hub' / 'checkpoints')  # where mmengine's load_from=URL saves


def test_truncated_download_is_never_used_or_kept(server, tmp_path):
    body = torch_bytes({'w': torch.randn(1000)})
    url = server.serve('/cut.pth', body, mode='truncate')
    with pytest.raises(WeightsDownloadError, match=rf'cut\.pth is incomplete: {len(body) // 2} of {len(body)} bytes'):
        resolve_file(url, progress=False)
    assert cache_files(tmp_path) == []  # no half file, no .partial left behind
    server.serve('/cut.pth', body)  # the server recovers: the next call downloads the whole file
    assert open(resolve_file(url, progress=False), 'rb').read() == body


def test_torch_hub_alone_keeps_a_truncated_body(server, tmp_path):
    """Why the transfer loop checks Content-Length itself: torch.hub.download_url_to_file saves the cut body."""
    body = torch_bytes({'w': torch.randn(1000)})
    url = server.serve('/cut.pth', body, mode='truncate')
    dst = str(tmp_path / 'hub.pth')
    torch.hub.download_url_to_file(url, dst, progress=False)
    assert os.path.getsize(dst) == len(body) // 2


def test_sha256_mismatch_is_refused_and_nothing_saved(server, tmp_path):
    body = torch_bytes({'w': torch.ones(3)})
    digest = hashlib.sha256(body).hexdigest()
    url = server.serve('/m.pth', body)
    wrong = ('0' if digest[0] != '0' else '1') + digest[1:]
    with pytest.raises(WeightsDownloadError, match=f'sha256 {digest}, expected {wrong}'):
        resolve_file(f'{url}#sha256={wrong}', progress=False)
    assert cache_files(tmp_path) == []
    assert open(resolve_file(f'{url}#sha256={digest[:10]}', progress=False), 'rb').read() == body  # a prefix works
    with pytest.raises(WeightsDownloadError, match='not the expected file'):  # a cached file is checked too
        resolve_file(f'{url}#sha256={wrong}', progress=False)
    with pytest.raises(ValueError, match='8 to 64 hex'):
        resolve_file(f'{url}#sha256=abc')


def test_offline_and_http_errors_are_clear(server, tmp_path):
    url = closed_port_url('/EVA02_CLIP_B_psz16_s8B.pt')
    with pytest.raises(WeightsDownloadError, match=r'could not download .*EVA02_CLIP_B_psz16_s8B\.pt .*Connection'
                                                   r'RefusedError.*no network.*local path'):
        resolve_file(url, progress=False)
    with pytest.raises(WeightsDownloadError, match='HTTP 404'):
        resolve_file(server.url('/nope.pth'), progress=False)
    assert cache_files(tmp_path) == []


# ------------------------------------------------------------------------------------- every site that reads
@pytest.fixture(scope='module')
def tiny_clip_state():
    from declip_mm.models.backbones import build_clip_model, tiny_clip_overrides
    torch.manual_seed(0)
    return build_clip_model('EVA02-B-16', tiny_clip_overrides('eva')).state_dict()


def test_backbone_text_encoder_and_vfm_read_urls(server, tiny_clip_state):
    from declip_mm.models.backbones import DeCLIPViT, tiny_clip_overrides
    from declip_mm.models.text import CLIPTextEncoder
    from declip_mm.models.vfm.vfm_teacher import VFMTeacher
    url = server.serve('/clip.pt', torch_bytes(tiny_clip_state))
    bb = DeCLIPViT('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=url)
    vis = {k: v for k, v in tiny_clip_state.items() if k.startswith('visual.') and 'rope' not in k}
    assert all(torch.equal(bb.state_dict()[k], v) for k, v in vis.items())
    enc = CLIPTextEncoder('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=url)
    text = {k: v for k, v in tiny_clip_state.items() if not k.startswith('visual.')}
    assert text and all(torch.equal(enc.clip.state_dict()[k], v) for k, v in text.items())
    assert server.hits == ['/clip.pt']  # downloaded once for both
    kw = dict(embed_dim=64, depth=2, num_heads=4, img_size=112)
    vfm = VFMTeacher('dinov2_s', model_kwargs=kw)
    vfm_url = server.serve('/dinov2.pth', torch_bytes(vfm.model.state_dict()))
    vfm2 = VFMTeacher('dinov2_s', checkpoint=vfm_url, model_kwargs=kw)
    assert all(torch.equal(vfm2.model.state_dict()[k], v) for k, v in vfm.model.state_dict().items())


def test_unreachable_backbone_url_defers_with_the_download_error(server, tiny_clip_state):
    """Offline, a remote CLIP file is treated like a missing one: the model builds (a full model checkpoint may
    fill it, as tools/test.py CKPT does), and using or training it raises the download error."""
    from declip_mm.models.backbones import CheckpointError, DeCLIPViT, tiny_clip_overrides
    bb = DeCLIPViT('EVA02-B-16', tiny_clip_overrides('eva'), checkpoint=closed_port_url('/clip.pt'))
    with pytest.raises(CheckpointError, match='could not download .*clip.pt.*ConnectionRefusedError'):
        bb.init_weights()
    bb.load_state_dict({k: v for k, v in tiny_clip_state.items() if k.startswith('visual.')}, strict=False)
    bb.init_weights()  # filled by the state dict: no error


def test_text_embedding_files_read_urls(server, tmp_path):
    import numpy as np
    from declip_mm.models.roi_heads.text_classifier import load_text_embeddings
    emb = {'cat': torch.tensor([1., 0.]), 'dog': torch.tensor([0., 1.]), 'background': torch.tensor([1., 1.])}
    got = load_text_embeddings(server.serve('/coco.pt', torch_bytes(emb)), ['dog', 'cat'])
    torch.testing.assert_close(got, torch.tensor([[0., 1.], [1., 0.], [2 ** -.5, 2 ** -.5]]))
    buf = io.BytesIO()
    np.save(buf, np.array([[1., 0.], [0., 1.], [1., 1.]], dtype=np.float32))
    url = server.serve('/emb/voc.npy', buf.getvalue())
    server.serve('/emb/voc.names.txt', b'cat\ndog\nbackground\n')  # the names file comes along
    torch.testing.assert_close(load_text_embeddings(url, ['dog', 'cat']), got)


@pytest.fixture(scope='module')
def run_checkpoint_bytes(tmp_path_factory):
    """An mmengine run-state checkpoint (optimizer, message hub with HistoryBuffers) from a one-epoch Runner run."""
    import torch.nn as nn
    from mmengine.config import Config
    from mmengine.model import BaseModel
    from mmengine.registry import DATASETS, MODELS
    from mmengine.runner import Runner

    @MODELS.register_module(name='_RemoteToy', force=True)
    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, x, mode='loss'):
            return dict(loss=self.lin(x).pow(2).mean())

    @DATASETS.register_module(name='_RemoteToyData', force=True)
    class ToyData(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return dict(x=torch.full((2, ), float(i)))

    work = tmp_path_factory.mktemp('runner')
    cfg = dict(model=dict(type='_RemoteToy'), work_dir=str(work), experiment_name='remote_toy',
               train_dataloader=dict(dataset=dict(type='_RemoteToyData'), sampler=dict(type='DefaultSampler'),
                                     batch_size=2, collate_fn=dict(type='default_collate'), num_workers=0),
               optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)), train_cfg=dict(by_epoch=True, max_epochs=1),
               default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)), log_level='WARNING')
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return (work / 'epoch_1.pth').read_bytes(), runner.model.state_dict()


def test_load_from_and_test_checkpoint_urls_through_mmengine(server, run_checkpoint_bytes):
    """load_from / tools/test.py CKPT / --resume go through mmengine's CheckpointLoader: inside
    mmengine_checkpoint_loading() an http(s) or hf-hub: path is resolved and read with weights_only=True."""
    from mmengine.runner.checkpoint import CheckpointLoader
    from declip_mm.utils.run_checkpoints import load_checkpoint_file, mmengine_checkpoint_loading
    body, state = run_checkpoint_bytes
    url = server.serve('/work_dirs/epoch_1.pth', body)
    with mmengine_checkpoint_loading():
        ckpt = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert all(torch.equal(ckpt['state_dict'][k], v) for k, v in state.items())
    assert 'message_hub' in ckpt and load_checkpoint_file(url)['meta'] == ckpt['meta']


def test_inferencer_weights_url(server, run_checkpoint_bytes):
    import torch.nn as nn
    from declip_mm.apis.base import load_fitting_checkpoint
    body, state = run_checkpoint_bytes
    model = nn.Module()
    model.lin = nn.Linear(2, 1)
    load_fitting_checkpoint(model, server.serve('/trained.pth', body))
    assert torch.equal(model.lin.weight, state['lin.weight'])


# ----------------------------------------------------------------------------------------------------- hf-hub
def test_hf_hub_specs_parse():
    assert remote_files.parse_hf_spec('hf-hub:org/repo/sub/w.pt') == ('org/repo', None, 'sub/w.pt')
    assert remote_files.parse_hf_spec('hf-hub:org/repo@v1.0/w.pt') == ('org/repo', 'v1.0', 'w.pt')
    assert remote_files.parse_hf_spec('hf-hub:timm/eva02') == ('timm/eva02', None, None)
    with pytest.raises(WeightsDownloadError, match='not an hf-hub spec'):
        remote_files.parse_hf_spec('hf-hub:justaname')


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """The two calls hf_hub_download makes against the Hub, for files at ``/ORG/REPO/resolve/REV/PATH``: a HEAD for
    the metadata (X-Repo-Commit, ETag, size) and a GET for the bytes; 404 with X-Error-Code for absent files."""
    files = {}  # 'org/repo/path' -> bytes
    hits = None
    commit = 'c' * 40

    def log_message(self, *args):
        pass

    def _answer(self, with_body):
        self.hits.append((self.command, self.path))
        parts = self.path.split('?')[0].split('/')  # ['', org, repo, 'resolve', rev, *path]
        key = '/'.join(parts[1:3] + parts[5:]) if len(parts) > 5 and parts[3] == 'resolve' else None
        body = self.files.get(key)
        if body is None:
            self.send_response(404)
            self.send_header('X-Error-Code', 'EntryNotFound')
            self.send_header('X-Repo-Commit', self.commit)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header('X-Repo-Commit', self.commit)
        self.send_header('ETag', '"' + hashlib.sha256(body).hexdigest() + '"')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A Hub on 127.0.0.1 (HF_ENDPOINT) and an empty Hugging Face cache."""
    import huggingface_hub.constants as hf_constants
    handler = type('Hub', (_HubHandler, ), dict(files={}, hits=[]))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    monkeypatch.setenv('HF_ENDPOINT', f'http://127.0.0.1:{httpd.server_address[1]}')
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path / 'hf_cache'))
    yield handler
    httpd.shutdown()
    httpd.server_close()


def test_hf_hub_files_download_into_the_hf_cache(fake_hub, monkeypatch, tmp_path):
    body = torch_bytes({'w': torch.arange(4.)})
    fake_hub.files['org/declip/weights/epoch_6.pt'] = body
    path = resolve_file('hf-hub:org/declip/weights/epoch_6.pt', progress=False)
    assert path.startswith(str(tmp_path / 'hf_cache')) and open(path, 'rb').read() == body
    assert path.endswith(f'snapshots/{fake_hub.commit}/weights/epoch_6.pt')
    digest = hashlib.sha256(body).hexdigest()
    assert resolve_file(f'hf-hub:org/declip/weights/epoch_6.pt#sha256={digest}') == path
    with pytest.raises(WeightsDownloadError, match='not the expected file'):
        resolve_file('hf-hub:org/declip/weights/epoch_6.pt#sha256=' + '0' * 64)
    # offline (nothing listens at the endpoint): the cached file is used without an error
    monkeypatch.setenv('HF_ENDPOINT', closed_port_url('').rstrip('/'))
    assert resolve_file('hf-hub:org/declip/weights/epoch_6.pt') == path
    # an uncached file offline is a clear error (HF_HUB_OFFLINE: huggingface_hub's own retries would take ~25 s)
    import huggingface_hub.constants as hf_constants
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    assert resolve_file('hf-hub:org/declip/weights/epoch_6.pt') == path
    with pytest.raises(WeightsDownloadError, match=r'could not get hf-hub:org/declip/other\.pt .*Offline\?'):
        resolve_file('hf-hub:org/declip/other.pt')


def test_hf_hub_open_clip_repo_and_missing_files(fake_hub):
    from declip_mm.models.backbones.checkpoint import read_checkpoint
    fake_hub.files['timm/tiny-clip/open_clip_pytorch_model.bin'] = torch_bytes({'visual.proj': torch.ones(2, 2)})
    sd, _ = read_checkpoint('hf-hub:timm/tiny-clip')  # no .safetensors in the repo: the .bin is taken
    assert torch.equal(sd['visual.proj'], torch.ones(2, 2))
    with pytest.raises(WeightsDownloadError, match=r'hf-hub:timm/tiny-clip/nope\.pt.*EntryNotFound'):
        resolve_file('hf-hub:timm/tiny-clip/nope.pt')
