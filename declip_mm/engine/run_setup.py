"""Per-run settings our tools/train.py and tools/test.py apply to a config before building the Runner."""
import itertools
import os

_RUNS = itertools.count()


def own_visualizer_name(cfg) -> None:
    """Give the run's visualizer a name of its own.

    mmengine keeps visualizers per process by name (mmdet's and mmseg's runtimes both call theirs ``'visualizer'``)
    and returns an existing one instead of building the configured type, while the visualization hooks take the
    most recently created visualizer.  A second run in one process (tests, notebooks, the main job) would otherwise
    draw with the first run's visualizer, or with one an inferencer made meanwhile (an mmseg visualizer in a
    detection test run)."""
    vis = cfg.get('visualizer')
    if isinstance(vis, dict):
        vis['name'] = f"{vis.get('name') or 'visualizer'}_{os.getpid()}_{next(_RUNS)}"
