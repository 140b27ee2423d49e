# Training-free evaluation on PASCAL-Context-59: data + metric + per-benchmark model settings.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(4096, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),  # after Resize: the GT keeps its original size
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='PascalContextDataset59', data_root='data/VOCdevkit/VOC2010',
                 ann_file='ImageSets/SegmentationContext/val.txt',
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
                 pipeline=test_pipeline))
# Table 5 numbers come from mmseg's IoUMetric (OVSegMetric gives detectron2's rule instead)
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
