_base_ = ['mmdet::_base_/default_runtime.py']
default_scope = 'mmdet'
custom_imports = dict(imports=['declip_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='OVClassCheckHook')]
