# catseg_vitb16_openai_coco171_384.py with fp16 autocast + dynamic loss scaling (the base trains in bf16; the
# official recipe is fp32 + TF32).
_base_ = ['./catseg_vitb16_openai_coco171_384.py']
optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
