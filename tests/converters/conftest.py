import importlib
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools', 'model_converters')
if TOOLS not in sys.path:  # converters import their shared `_common` module by name, as when run as scripts
    sys.path.insert(0, TOOLS)


def converter(name: str):
    """Import tools/model_converters/<name>.py as a module."""
    return importlib.import_module(name)
