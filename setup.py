from setuptools import find_packages, setup

setup(
    name='mmkd',
    version='0.1.0',
    description='Cross-architecture knowledge distillation for OpenMMLab',
    packages=find_packages(include=['mmkd', 'mmkd.*']),
    python_requires='>=3.9',
    install_requires=['mmengine==0.10.7', 'mmpretrain==1.2.0'],
)
