"""mmkd's packaging.

Besides the ``mmkd`` package, an install carries ``mmkd/.mim/``: the configs, the tools and the
model index, where OpenMMLab's ``mim`` looks for a codebase's files (``mim train mmkd CONFIG``,
``mim test``, ``mim search mmkd``; docs/mim.md).
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
#: what mim reads from ``<package>/.mim/``: train/test scripts, configs, the model index
MIM_FILES = ('configs', 'tools', 'model-index.yml')
#: setuptools commands that install the working tree in place (PEP 660 ``editable_wheel`` for
#: ``pip install -e .``, legacy ``develop``): ``.mim`` links to the repository's files
EDITABLE_COMMANDS = {'develop', 'editable_wheel'}
#: commands whose output must contain the files themselves (a wheel cannot hold links)
COPY_COMMANDS = {'install', 'build', 'build_py', 'bdist_wheel', 'sdist'}


def add_mim_extension() -> None:
    """Fill ``mmkd/.mim`` with :data:`MIM_FILES`, as OpenMMLab packages do: symbolic links for
    an editable install (edits show at once), copies when building a wheel or an sdist;
    nothing for other commands (``egg_info``, ``dist_info``, ``clean``). A source that does not
    exist (a build from an sdist, which ships ``mmkd/.mim`` already) is left as it is."""
    commands = set(sys.argv[1:])
    if commands & EDITABLE_COMMANDS:
        mode = 'symlink'
    elif commands & COPY_COMMANDS:
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(ROOT, 'mmkd', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(ROOT, name)
        dst = osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        # replace whatever an earlier install left: a link, a copied tree or a file
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            try:
                # relative, so that the link survives moving the checkout
                os.symlink(osp.relpath(src, mim_dir), dst)
                continue
            except OSError:  # no symlinks (e.g. Windows without the privilege): copy
                pass
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmkd',
        version='0.1.0',
        description='Cross-architecture knowledge distillation for OpenMMLab',
        packages=find_packages(include=['mmkd', 'mmkd.*']),
        # mmkd/.mim is not a package (no __init__.py): it travels as package data
        package_data={'mmkd': ['.mim/model-index.yml', '.mim/configs/**/*.py',
                               '.mim/configs/**/*.yml', '.mim/tools/**/*.py',
                               '.mim/tools/**/*.sh']},
        python_requires='>=3.9',
        install_requires=['mmengine==0.10.7', 'mmpretrain==1.2.0'],
        zip_safe=False,
    )
