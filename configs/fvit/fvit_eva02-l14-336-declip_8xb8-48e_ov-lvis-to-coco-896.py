# Transfer evaluation: the OV-LVIS-trained F-ViT + DeCLIP L/14 tested on COCO val2017 (80 classes), F-ViT's transfer
# recipe (CLIPSelf configs/transfer/fvit_vitl14_upsample_fpn_transfer2coco.py): one alpha for all classes (0.2),
# fixed T_det 50, T_vlm 120, boxes only (no mask head), 300 detections per image as in the OV-LVIS test setting.
# Paper (Table 14): 41.0 / 64.6 / 44.8 AP / AP50 / AP75.
#   python tools/test.py THIS_CONFIG work_dirs/<ov-lvis run>/epoch_48.pth
_base_ = './fvit_eva02-l14-336-declip_8xb8-48e_ov-lvis-896.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            num_classes=80,
            class_names='coco',
            text_embeddings='data/text_embeddings/coco_eva02-l14-336.pt',
            logit_scale=50.0,
            learn_logit_scale=False,
            alpha=0.2,
            beta=0.2,
            vlm_temperature=120.0,
            novel_classes=None,
            # test only; a plain CE replaces the OV-LVIS zero-weight loss (its class weights are for 1203 classes)
            loss_cls=dict(_delete_=True, type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        mask_roi_extractor=None,
        mask_head=None),
    test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='ResizeAtLeastOnePixel', scale=(896, 896), keep_ratio=True),  # padded in the data preprocessor
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CocoDataset',
        data_root='data/coco/',
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(_delete_=True, type='CocoMetric', ann_file='data/coco/annotations/instances_val2017.json',
                      metric='bbox')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
