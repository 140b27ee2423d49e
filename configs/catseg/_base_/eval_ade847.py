# CAT-Seg evaluation on ADE20K-847 (full) val, uint16 TIFF labels, ignore 65535.
# Test: short side 640 (long <= 2560) with detectron2's rule and PIL bilinear (antialiased when shrinking), as
# CAT-Seg's ResizeShortestEdge on uint8; annotations loaded after the resize so the GT keeps its size; the model
# does the 640x640 square resize, four 384 windows + a global view (see CATSeg).  mIoU with detectron2's rule
# (OVSegMetric).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.ResizeShortestEdge', scale=640, max_size=2560, backend='pillow', interpolation='bilinear'),
    dict(type='LoadSegAnnotations16'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CATSegADE847Dataset', data_root='data/ADE20K_2021_17_01',
                 data_prefix=dict(img_path='images_detectron2/validation', seg_map_path='annotations_detectron2/validation'),
                 ignore_index=65535,
                 pipeline=test_pipeline))
test_evaluator = dict(type='OVSegMetric', ignore_index=65535)
val_dataloader = test_dataloader
val_evaluator = test_evaluator
val_cfg = dict(type='ValLoop')
