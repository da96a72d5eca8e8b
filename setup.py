"""The extras, which pyproject.toml cannot spell: the lab is a distribution of
its own (lab/pyproject.toml, the ``probe_lab`` package) so that a volunteer's
``pip install .`` carries no namespace, nftables or server code, and
``pip install '.[lab]'`` from a checkout adds it. pip takes no relative path
in a requirement, so the lab's location is written here as an absolute
file URL, computed where the checkout is being built.
"""

from pathlib import Path

from setuptools import setup

LAB = f"reachability-probe-lab @ {(Path(__file__).resolve().parent / 'lab').as_uri()}"

setup(
    extras_require={
        "lab": [LAB],
        # The test suite includes the lab's own tests.
        "test": ["pytest>=8", "hypothesis>=6.100", "jsonschema>=4.20", "pytest-timeout>=2.3",
                 "import-linter>=2.1", LAB],
    }
)
