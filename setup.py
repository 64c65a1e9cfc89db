"""Build step: copy the top-level ``schemas/`` into the wheel as ``pipeline/events/schemas/``.

Everything else is in pyproject.toml. ``schemas/`` stays the single source; the copy exists only
in the build directory and the wheel (an editable install reads ``schemas/`` in place).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SCHEMAS = Path(__file__).resolve().parent / "schemas"


class BuildWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "pipeline" / "events" / "schemas"
        self.mkpath(str(target))
        for schema in sorted(SCHEMAS.glob("*.avsc")):
            self.copy_file(str(schema), str(target / schema.name))


setup(cmdclass={"build_py": BuildWithSchemas})
