import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(rel_path: str):
    """Import a script under tools/ as a module."""
    path = osp.join(REPO, rel_path)
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='session')
def synthetic_det(tmp_path_factory):
    """The synthetic OV set + tiny-CLIP text embeddings, written once per session via the tool."""
    out = str(tmp_path_factory.mktemp('synthetic_ov_det'))
    tool = load_tool('tools/make_synthetic_det.py')
    paths = tool.main(['--out', out, '--num-train', '8', '--num-val', '4', '--size', '128'])
    paths['root'] = out
    return paths
