from setuptools import find_packages, setup

setup(
    name='declip_mm',
    version='0.1.0',
    description='DeCLIP (CVPR 2025) for mmdetection 3.x and mmsegmentation 1.x',
    packages=find_packages(include=['declip_mm', 'declip_mm.*']),
    package_data={'declip_mm': ['data/*', 'data/**/*']},
    include_package_data=True,
    python_requires='>=3.10',
)
