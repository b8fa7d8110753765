"""The config tree lives at the top level (conf/, the layout the project promises) and ships
inside the wheel as rnnlab/conf: build_py copies it into the built package. No symlink, so a
checkout without symlinks (Windows) builds the same wheel. An editable install copies nothing:
rnnlab.config.configdir finds the top-level conf/ of the checkout."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONF = Path(__file__).resolve().parent / "conf"


class BuildPyWithConf(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "rnnlab" / "conf"
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        for source in sorted(CONF.rglob("*.yaml")):
            dest = target / source.relative_to(CONF)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)


setup(cmdclass={"build_py": BuildPyWithConf})
