"""Weights where users keep them: a local path, an ``http(s)://`` URL or an ``hf-hub:`` file -> a local file.

:func:`resolve_file` is the one place every weight, VFM and text-embedding file the project reads goes through
(``DeCLIPViT`` / ``DeCLIPTextEncoder`` / ``VFMTeacher`` checkpoints, text-embedding files, ``load_from``,
``tools/test.py CKPT``, the inferencers' weights, the converters' sources).  Accepted specs:

* ``/path/to/file.pt`` (``~`` expanded): returned as it is;
* ``https://host/dir/file.pth``: downloaded once to ``$DECLIP_MM_WEIGHTS_DIR/file.pth``, by default
  ``torch.hub.get_dir()/checkpoints/file.pth`` (``$TORCH_HOME/hub/checkpoints``): the folder (and file names)
  torch.hub's ``load_state_dict_from_url`` and mmengine's ``load_from=URL`` use, so a file one of them already
  downloaded is reused.  A cached file is used without touching the network;
* ``hf-hub:ORG/REPO/path/in/repo.pt`` (``hf-hub:ORG/REPO@REVISION/...`` for a branch, tag or commit):
  ``huggingface_hub.hf_hub_download`` into the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``,
  ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured as usual); ``hf-hub:ORG/REPO`` alone is an
  open_clip model repo: its ``open_clip_model.safetensors``, else ``open_clip_pytorch_model.bin``;
* any of these with ``#sha256=HEX`` appended (the full digest, or a prefix of at least 8 hex digits): the file is
  checked against it (a cached file too) and refused when it differs.

HTTP downloads stream into a temporary file beside the target (progress bar on a terminal), are checked against
the server's ``Content-Length`` and the sha256, and only then renamed into place: a truncated or wrong download is
never used and never left where a later run would pick it up.  A file lock serialises processes (e.g. the ranks of
a distributed job) downloading the same file.  The transfer loop is torch.hub's ``download_url_to_file`` plus the
length check it lacks: ``http.client`` returns a body cut short by the server as a normal end of file, and that
function would keep it.
"""
import hashlib
import http.client
import os
import os.path as osp
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Optional, Tuple

REMOTE_PREFIXES = ('http://', 'https://', 'hf-hub:')
ENV_CACHE_DIR = 'DECLIP_MM_WEIGHTS_DIR'
# open_clip's weight files in a model repo (open_clip.pretrained's HF_SAFE_WEIGHTS_NAME / HF_WEIGHTS_NAME)
OPEN_CLIP_HF_FILES = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')
_CHUNK = 1 << 20
_VERIFIED = set()  # (path, size, mtime_ns, sha256 prefix) already checked in this process


class WeightsDownloadError(OSError):
    """A remote weight file that could not be fetched: offline, HTTP error, truncated transfer, sha256 mismatch."""


def is_remote(spec) -> bool:
    """True for an ``http(s)://`` or ``hf-hub:`` spec (with or without ``#sha256=``)."""
    return isinstance(spec, str) and spec.startswith(REMOTE_PREFIXES)


def split_sha256(spec: str) -> Tuple[str, Optional[str]]:
    """``'X#sha256=abc...'`` -> ``('X', 'abc...')``; ``'X'`` -> ``('X', None)``."""
    m = re.fullmatch(r'(.*)#sha256=([0-9a-fA-F]*)', spec)
    if m is None:
        if '#sha256' in spec:
            raise ValueError(f'{spec!r}: write the checksum as "#sha256=HEX"')
        return spec, None
    digest = m.group(2).lower()
    if not 8 <= len(digest) <= 64:
        raise ValueError(f'{spec!r}: the sha256 after "#sha256=" must be 8 to 64 hex digits (got {len(digest)})')
    return m.group(1), digest


def cache_dir() -> str:
    """Folder of downloaded ``http(s)://`` files: ``$DECLIP_MM_WEIGHTS_DIR`` or torch.hub's ``checkpoints``."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return osp.expanduser(env)
    import torch.hub
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def resolve_file(spec: str, progress: Optional[bool] = None) -> str:
    """The local path of ``spec`` (see the module doc), downloading it first if it is remote and not cached.

    Args:
        spec: local path, ``http(s)://`` URL or ``hf-hub:`` spec, optionally with ``#sha256=HEX``.
        progress: progress bar while downloading (None: only on a terminal).
    Raises:
        WeightsDownloadError naming the spec (and the cache file) when it cannot be fetched or fails a check.
    """
    spec = str(spec)
    if not is_remote(spec) and '#sha256=' not in spec:
        return osp.expanduser(spec)
    target, digest = split_sha256(spec)
    if target.startswith('hf-hub:'):
        path = _hf_hub_file(target, spec)
    elif is_remote(target):
        path = _http_file(target, digest, progress)
    else:
        path = osp.expanduser(target)
        if not osp.isfile(path):
            return path  # the caller reports the missing file
    if digest is not None:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns, digest)
        if key not in _VERIFIED:  # hash a (large) file once per process, not at every read
            actual = file_sha256(path)
            if not actual.startswith(digest):
                raise WeightsDownloadError(
                    f'{path} (for {spec}) has sha256 {actual}, expected {digest}...: not the expected file. Delete it '
                    'to download it again, or correct the "#sha256=" value.')
            _VERIFIED.add(key)
    return path


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_CHUNK), b''):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------- http(s)
def _http_file(url: str, digest: Optional[str], progress: Optional[bool]) -> str:
    name = osp.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name:
        raise WeightsDownloadError(f'{url}: the URL names no file (nothing after the last "/")')
    folder = cache_dir()
    dst = osp.join(folder, name)
    if osp.isfile(dst):
        return dst
    os.makedirs(folder, exist_ok=True)
    from filelock import FileLock
    with FileLock(dst + '.lock'):
        if not osp.isfile(dst):  # another process may have finished it while we waited
            download(url, dst, digest, progress)
    return dst


def download(url: str, dst: str, sha256: Optional[str] = None, progress: Optional[bool] = None) -> None:
    """Stream ``url`` to ``dst``: temporary file beside it, checked (length, sha256 prefix), then renamed."""
    from mmengine.logging import print_log
    from tqdm import tqdm
    tmp = f'{dst}.{uuid.uuid4().hex}.partial'
    where = f'(cache {osp.dirname(dst)}; set ${ENV_CACHE_DIR} to move it)'
    print_log(f'downloading {url} to {dst}', logger='current')
    try:
        req = urllib.request.Request(url, headers={'User-Agent': 'declip_mm'})
        try:
            u = urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            raise WeightsDownloadError(f'could not download {url}: HTTP {e.code} {e.reason}') from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, 'reason', e)
            raise WeightsDownloadError(
                f'could not download {url} ({type(reason).__name__}: {reason}): no network or the host is down? '
                f'Download the file where you have access and pass its local path, or put it at {dst} {where}'
            ) from None
        with u, open(tmp, 'wb') as f:
            size = u.headers.get('Content-Length')
            size = int(size) if size and size.isdigit() else None
            h = hashlib.sha256()
            got = 0
            with tqdm(total=size, unit='B', unit_scale=True, unit_divisor=1024, desc=osp.basename(dst),
                      disable=None if progress is None else not progress) as bar:
                while True:
                    try:
                        block = u.read(_CHUNK)
                    except (OSError, ValueError, http.client.HTTPException) as e:  # IncompleteRead, reset, timeout
                        raise WeightsDownloadError(f'download of {url} failed after {got} bytes '
                                                   f'({type(e).__name__}: {e}); nothing was saved') from None
                    if not block:
                        break
                    f.write(block)
                    h.update(block)
                    got += len(block)
                    bar.update(len(block))
        if size is not None and got != size:
            raise WeightsDownloadError(f'download of {url} is incomplete: {got} of {size} bytes received (the '
                                       'connection closed early); nothing was saved, try again')
        if sha256 is not None and not h.hexdigest().startswith(sha256):
            raise WeightsDownloadError(f'download of {url} has sha256 {h.hexdigest()}, expected {sha256}...: a '
                                       'different or damaged file; nothing was saved')
        os.replace(tmp, dst)
        if sha256 is not None:
            st = os.stat(dst)
            _VERIFIED.add((dst, st.st_size, st.st_mtime_ns, sha256))
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------------------------------ hf-hub
def parse_hf_spec(spec: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``hf-hub:ORG/REPO[@REV][/PATH]`` -> (repo_id, revision or None, path in repo or None)."""
    m = re.fullmatch(r'hf-hub:([\w.\-]+/[\w.\-]+)(?:@([^/]+))?(?:/(.+))?', spec)
    if m is None:
        raise WeightsDownloadError(f'{spec!r} is not an hf-hub spec: write hf-hub:ORG/REPO/path/in/repo.pt '
                                   '(hf-hub:ORG/REPO@REVISION/... for a branch, tag or commit)')
    return m.group(1), m.group(2), m.group(3)


def _hf_hub_file(target: str, spec: str) -> str:
    repo_id, revision, filename = parse_hf_spec(target)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - open_clip depends on it
        raise WeightsDownloadError(f'{spec}: hf-hub: files need huggingface_hub (pip install huggingface_hub)')
    candidates = [filename] if filename else list(OPEN_CLIP_HF_FILES)
    errors = []
    for name in candidates:
        try:
            # HF_ENDPOINT as set now (huggingface_hub reads it once, at import)
            return hf_hub_download(repo_id, name, revision=revision, endpoint=os.environ.get('HF_ENDPOINT') or None)
        except Exception as e:  # noqa: BLE001 - huggingface_hub raises many types (offline, 404, auth, ...)
            errors.append(f'{name}: {type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e) else ""}')
            if type(e).__name__ != 'RemoteEntryNotFoundError':
                break  # offline / no such repo / no access: trying the next file name cannot help
    raise WeightsDownloadError(
        f'could not get {spec} from the Hugging Face hub ({"; ".join(errors)}). Offline? A file downloaded before '
        'is used from the Hugging Face cache (HF_HOME / HF_HUB_CACHE); otherwise download it where you have access '
        'and pass its local path.')
