"""Hook checking that the detector's text classifier matches the dataset's classes (count and names)."""
from mmengine.hooks import Hook

from declip_mm.registry import DET_HOOKS, HOOKS, register_everywhere


def check_head_classes(model, dataset_meta: dict, what: str = 'dataset') -> None:
    """Raise ``ValueError`` if the box head's classes (``num_classes`` and, when known, ``class_names``) differ
    from ``dataset_meta['classes']`` — text-embedding rows would otherwise silently mislabel classes."""
    if hasattr(model, 'module'):
        model = model.module
    head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    classes = (dataset_meta or {}).get('classes')
    if classes is None:
        return
    if head is None:
        # detectors that hold their vocabulary themselves (OVDQUO: class_names + text rows in label order)
        names = getattr(model, 'class_names', None)
        if names is not None and list(names) != list(classes):
            diff = [(i, a, b) for i, (a, b) in enumerate(zip(names, classes)) if a != b]
            raise ValueError(f'detector class_names ({len(names)}) differ from the {len(classes)} {what} classes '
                             f'(text-embedding rows must follow the label order), first differences (index, '
                             f'detector, dataset): {diff[:3]}')
        return
    classes = list(classes)
    if head.num_classes != len(classes):
        raise ValueError(f'{what} has {len(classes)} classes but the box head has num_classes={head.num_classes} '
                         '(set model.roi_head.bbox_head.num_classes / text_embeddings / class_names to match)')
    names = getattr(getattr(head, 'fc_cls', None), 'class_names', None)
    if names is not None and list(names) != classes:
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(names, classes)) if a != b]
        raise ValueError(f'box head class_names differ from the {what} classes (text-embedding rows must follow '
                         f'the label order), first differences (index, head, dataset): {diff[:3]}')


@register_everywhere(DET_HOOKS, HOOKS)
class OVClassCheckHook(Hook):
    """Before training / validation / testing, compare the box head's classes with the dataloader's dataset."""
    priority = 'VERY_HIGH'

    def _check(self, runner, loader_name):
        loader = getattr(runner, loader_name, None)
        dataset = getattr(loader, 'dataset', None)
        meta = getattr(dataset, 'metainfo', None)
        if meta is not None:
            check_head_classes(runner.model, meta, f'{loader_name}.dataset')

    def before_train(self, runner) -> None:
        self._check(runner, 'train_dataloader')

    def before_val(self, runner) -> None:
        self._check(runner, 'val_dataloader')

    def before_test(self, runner) -> None:
        self._check(runner, 'test_dataloader')
