# Official B/16 setting plus the region-classification validation on COCO-panoptic val2017 after every epoch
# (DeCLIP Table 1 / Figure 6 protocol: class-mean top-1/top-5 for thing and stuff; rois, maskpool, crops scores).
_base_ = ['./declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py']

val_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='RegionClsDataset', data_root='data/coco/', ann_file='annotations/panoptic_val2017.json',
                 seg_prefix='annotations/panoptic_val2017/', data_prefix=dict(img='val2017/'),
                 pipeline=[dict(type='DeCLIPRegionInputs', det_size=560, student_patch=16, crop_size=224)]))
val_evaluator = dict(_delete_=True, type='RegionClsMetric')
val_cfg = dict(_delete_=True, type='ValLoop')
train_cfg = dict(val_interval=1)
