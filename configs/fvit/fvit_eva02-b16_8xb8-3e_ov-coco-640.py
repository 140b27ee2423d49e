# F-ViT, vanilla EVA02-CLIP-B/16 (frozen), OV-COCO, 640 px, 3 epochs.  Paper baseline: F-ViT on CLIPSelf B/16
# 37.6 AP50-novel; vanilla EVA-CLIP was not reported (measure it).
_base_ = [
    '_base_/fvit_faster-rcnn_eva02-b16.py', '_base_/ov_coco_lsj_640.py', '_base_/schedule_ov_coco_3e.py',
    '_base_/default_runtime.py'
]
