# vanilla OpenAI CLIP ViT-B/16 (last block as is; Table 5 'CLIP' row); for the EVA-CLIP row use model_name='EVA02-B-16' with the EVA-CLIP release checkpoint: training-free evaluation on COCO-Object (background + 80 things).
_base_ = ['./_base_/default_runtime.py', './_base_/model_clip_vitb16.py', './_base_/ds_coco_object.py']
model = dict(class_names='cls_coco_object', logit_scale=40.0, prob_thd=0.2)
