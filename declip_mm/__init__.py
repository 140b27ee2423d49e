"""declip_mm: DeCLIP (CVPR 2025) for mmdetection 3.x and mmsegmentation 1.x.

Importing the package registers every module (``custom_imports=dict(imports=['declip_mm'])``) and changes nothing
else: no library is patched on import (see ``declip_mm.utils.compat`` and ``declip_mm.utils.run_checkpoints``).
"""
from . import registry  # noqa: F401,E402
from . import datasets, engine, evaluation, models, visualization  # noqa: F401,E402
from .models.backbones import DeCLIPViT  # noqa: F401,E402
from .models.text import CLIPTextEncoder  # noqa: F401,E402

__version__ = '0.1.0'
