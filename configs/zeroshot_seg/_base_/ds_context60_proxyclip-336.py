# PASCAL Context-60 at ProxyCLIP's and CorrCLIP's test protocol (short side 336, long side at most 2048): the data of
# ds_context60.py with that resize; the ProxyCLIP and CorrCLIP configs of this benchmark share it.
_base_ = ['./ds_context60.py']
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 336), keep_ratio=True),
    dict(type='LoadAnnotations'),  # after Resize: the GT keeps its original size
    dict(type='PackSegInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
