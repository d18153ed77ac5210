"""The wheel carries the checkout's top-level run-time folders inside the package.

The project keeps ``shaders/``, ``presets/`` and ``resources/`` at the top of the checkout (where the app
and the tests read them when run from it); a built wheel copies them to ``persona_studio/data/`` so that
an installed program finds them through ``persona_studio.paths.project_folder``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGED = {  # folder -> the files of it the program reads at run time
    "shaders": ["*.vert", "*.frag", "*.glsl"],
    "presets": ["motions/*.npz", "training/*.json", "bvh/*.json"],
    "resources": ["sample_person.png", "body/*.npz", "web_player/*.html", "web_player/*.js"],
}


class BuildWithData(build_py):
    """build_py, then the packaged folders copied afresh under ``persona_studio/data/`` in the build tree
    (an earlier build's copies are removed first, so a file deleted from the checkout leaves the wheel too)."""

    def run(self):
        super().run()
        data = Path(self.build_lib) / "persona_studio" / "data"
        shutil.rmtree(data, ignore_errors=True)
        for folder, patterns in PACKAGED.items():
            for pattern in patterns:
                for source in sorted((ROOT / folder).glob(pattern)):
                    target = data / folder / source.relative_to(ROOT / folder)
                    self.mkpath(str(target.parent))
                    self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithData})
