# DeCLIP EVA02-CLIP-B/16 training-free on PASCAL VOC-21 (the paper's Table 5 setting) + the mask vote (CorrCLIP's
# "map correction"): each class-agnostic region takes its most frequent predicted label.
# Region masks: CorrCLIP's published SAM 2 masks (extract region_masks.zip into data/, the VOC folder is
# data/region_masks/voc), or your own from tools/gen_masks.py (same format):
#   python tools/gen_masks.py configs/zeroshot_seg/trainingfree-maskvote_eva02-b16-declip_voc21-448.py \
#       --generator sam2 --checkpoint checkpoints/sam2_hiera_large.pt --out-dir data/region_masks/voc
# on_missing='skip' would evaluate images without a usable mask file unvoted (counted in the log) instead of failing.
_base_ = ['./trainingfree_eva02-b16-declip_voc21-448.py']
model = dict(postprocess=[
    dict(type='MaskVote', on_missing='error',
         mask_source=dict(type='MaskFileSource', mask_dir='data/region_masks/voc')),
])
custom_hooks = [dict(type='SegPostProcessReportHook')]
