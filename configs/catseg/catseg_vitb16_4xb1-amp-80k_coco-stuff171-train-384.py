# catseg_vitb16_4xb1-80k_coco-stuff171-train-384.py with fp16 autocast + dynamic loss scaling (the base trains in bf16; the
# official recipe is fp32 + TF32).
_base_ = ['./catseg_vitb16_4xb1-80k_coco-stuff171-train-384.py']
optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
