# CAT-Seg evaluation on ADE20K-150 val.
# Test: short side 640 (long <= 2560); annotations loaded after Resize so the GT keeps its size; the model does the
# 640x640 square resize, four 384 windows + a global view (see CATSeg).  mIoU with detectron2's rule (OVSegMetric).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CATSegADE150Dataset', data_root='data/ade/ADEChallengeData2016',
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_evaluator = dict(type='OVSegMetric', ignore_index=255)
val_dataloader = test_dataloader
val_evaluator = test_evaluator
val_cfg = dict(type='ValLoop')
