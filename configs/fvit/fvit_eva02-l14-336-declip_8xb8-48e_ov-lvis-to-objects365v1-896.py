# Transfer evaluation on Objects365 v2 val (365 classes): alpha 0.3 for all classes, fixed T_det 50, T_vlm 120.
# Paper (Table 14): 20.0 / 32.2 / 21.2 AP / AP50 / AP75.
_base_ = './fvit_eva02-l14-336-declip_8xb8-48e_ov-lvis-to-coco-896.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=365, class_names='objects365v2',
                       text_embeddings='data/text_embeddings/objects365v2_eva02-l14-336.pt', alpha=0.3, beta=0.3),
        mask_head=dict(num_classes=365)))
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='Objects365V2Dataset',
        data_root='data/Objects365/Obj365_v2/',
        ann_file='annotations/zhiyuan_objv2_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(ann_file='data/Objects365/Obj365_v2/annotations/zhiyuan_objv2_val.json')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
