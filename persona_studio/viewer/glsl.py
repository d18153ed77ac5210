"""GLSL programs loaded from the repository's ``shaders/`` folder, with readable compile errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from OpenGL import GL

from persona_studio.paths import project_folder

SHADER_DIR = project_folder("shaders")


class ShaderError(RuntimeError):
    """A GLSL file is missing or does not compile or link."""


def _compile(paths: list[Path], stage: int) -> int:
    """Compile the concatenation of ``paths`` (the first one holds the ``#version`` line)."""
    for path in paths:
        if not path.is_file():
            raise ShaderError(f"shader file not found: {path} (the shaders/ folder ships beside persona_studio/)")
    shader = GL.glCreateShader(stage)
    GL.glShaderSource(shader, "\n".join(path.read_text(encoding="utf-8") for path in paths))
    GL.glCompileShader(shader)
    if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
        log = GL.glGetShaderInfoLog(shader)
        GL.glDeleteShader(shader)
        raise ShaderError(f"{' + '.join(p.name for p in paths)} does not compile:\n{_text(log)}")
    return shader


def _text(log: bytes | str) -> str:
    return log.decode("utf-8", "replace") if isinstance(log, bytes) else str(log)


class Program:
    """A linked vertex + fragment program with cached uniform locations.

    ``vertex`` / ``fragment`` name files in ``shader_dir``; a tuple of names is concatenated in
    order (shared code first), as GLSL 3.30 has no #include.
    """

    def __init__(self, vertex: str | tuple[str, ...], fragment: str | tuple[str, ...],
                 shader_dir: Path = SHADER_DIR) -> None:
        vertex_files = (vertex,) if isinstance(vertex, str) else tuple(vertex)
        fragment_files = (fragment,) if isinstance(fragment, str) else tuple(fragment)
        self.name = f"{'+'.join(vertex_files)} / {'+'.join(fragment_files)}"
        stages = [_compile([shader_dir / f for f in vertex_files], GL.GL_VERTEX_SHADER),
                  _compile([shader_dir / f for f in fragment_files], GL.GL_FRAGMENT_SHADER)]
        self.id = GL.glCreateProgram()
        for shader in stages:
            GL.glAttachShader(self.id, shader)
        GL.glLinkProgram(self.id)
        for shader in stages:
            GL.glDetachShader(self.id, shader)
            GL.glDeleteShader(shader)
        if not GL.glGetProgramiv(self.id, GL.GL_LINK_STATUS):
            raise ShaderError(f"{self.name} does not link:\n{_text(GL.glGetProgramInfoLog(self.id))}")
        self._locations: dict[str, int] = {}

    def use(self) -> None:
        """Make this program the one in use."""
        GL.glUseProgram(self.id)

    def location(self, name: str) -> int:
        """The uniform's location (-1 when not in the program), looked up once."""
        if name not in self._locations:
            self._locations[name] = GL.glGetUniformLocation(self.id, name)
        return self._locations[name]

    def set(self, name: str, value) -> None:
        """Set a uniform of the program in use: int, float, vec2-4 (sequence) or mat3/mat4 (array)."""
        loc = self.location(name)
        if loc < 0:  # optimised out or misspelt: GL ignores it, so do we
            return
        if isinstance(value, (bool, int, np.integer)):
            GL.glUniform1i(loc, int(value))
            return
        if isinstance(value, (float, np.floating)):
            GL.glUniform1f(loc, float(value))
            return
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape == (3, 3):
            GL.glUniformMatrix3fv(loc, 1, GL.GL_TRUE, arr)
        elif arr.shape == (4, 4):
            GL.glUniformMatrix4fv(loc, 1, GL.GL_TRUE, arr)
        elif arr.shape in ((2,), (3,), (4,)):
            (GL.glUniform2fv, GL.glUniform3fv, GL.glUniform4fv)[arr.shape[0] - 2](loc, 1, arr)
        else:
            raise ValueError(f"unsupported uniform shape {arr.shape} for {name}")

    def delete(self) -> None:
        """Free the GL program."""
        GL.glDeleteProgram(self.id)
