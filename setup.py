"""Packages: slt_plugins, and the repository's tools/ and registry/ folders installed as fairseq_slt.tools and
fairseq_slt.registry, so that the generic names `tools` and `registry` are not claimed in site-packages."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["slt_plugins", "slt_plugins.*"]) + ["fairseq_slt.tools", "fairseq_slt.registry"],
    package_dir={"fairseq_slt.tools": "tools", "fairseq_slt.registry": "registry"},
)
