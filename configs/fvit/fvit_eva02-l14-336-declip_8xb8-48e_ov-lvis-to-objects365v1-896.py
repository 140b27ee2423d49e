# Transfer evaluation on Objects365 **v1** val (365 classes), as CLIPSelf's
# configs/transfer/fvit_vitl14_upsample_fpn_transfer2objects365v1.py and the paper's numbers: alpha 0.3 for all
# classes, fixed T_det 50, T_vlm 120, 300 detections per image.  Paper (Table 14): 20.0 / 32.2 / 21.2 AP / AP50 / AP75.
# Data: mmdet's Objects365 v1 layout (data/Objects365/Obj365_v1/annotations/objects365_val.json, images in val/).
# Its json lists the categories out of id order: Objects365V1Dataset and CocoMetric(sort_categories=True) sort them.
_base_ = './fvit_eva02-l14-336-declip_8xb8-48e_ov-lvis-to-coco-896.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=365, class_names='objects365v1',
                       text_embeddings='data/text_embeddings/objects365v1_eva02-l14-336.pt', alpha=0.3, beta=0.3)))
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='Objects365V1Dataset',
        data_root='data/Objects365/Obj365_v1/',
        ann_file='annotations/objects365_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(ann_file='data/Objects365/Obj365_v1/annotations/objects365_val.json', sort_categories=True)
val_dataloader = test_dataloader
val_evaluator = test_evaluator
