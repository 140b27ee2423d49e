# CAT-Seg evaluation on COCO-Stuff-171 val2017 (in-domain).
# Test: short side 640 (long <= 2560) with detectron2's rule and PIL bilinear (antialiased when shrinking), as
# CAT-Seg's ResizeShortestEdge on uint8; annotations loaded after the resize so the GT keeps its size; the model
# does the 640x640 square resize, four 384 windows + a global view (see CATSeg).  mIoU with detectron2's rule
# (OVSegMetric).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.ResizeShortestEdge', scale=640, max_size=2560, backend='pillow', interpolation='bilinear'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CATSegCOCOStuff171Dataset', data_root='data/coco_stuff164k',
                 data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'),
                 pipeline=test_pipeline))
test_evaluator = dict(type='OVSegMetric', ignore_index=255)
val_dataloader = test_dataloader
val_evaluator = test_evaluator
val_cfg = dict(type='ValLoop')
