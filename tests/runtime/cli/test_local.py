"""``kernel-access local`` without the ``local`` extra says which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: Makes one of the emulator's dependencies unimportable, as in an installation without the extra,
#: then runs the command as the console script would.
WITHOUT = """
import sys
sys.modules[{module!r}] = None  # `import {module}` now raises ImportError(name={module!r})
from kernel_access.cli.main import main
sys.exit(main(["local", "--no-synth"]))
"""


@pytest.mark.parametrize("module", ["moto", "jwt", "cryptography"])
def test_local_names_the_extra_when_a_dependency_is_missing(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT.format(module=module)],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'kernel-access[local]'" in result.stderr
    assert f"({module} is missing)" in result.stderr or f"({module}." in result.stderr


def test_help_names_the_extra() -> None:
    from kernel_access.cli.local import EPILOG

    assert "pip install 'kernel-access[local]'" in EPILOG
