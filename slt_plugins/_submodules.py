"""Import every module of a sub-package, so a new task, model or criterion is one new file."""

import importlib
import pkgutil


def import_submodules(package_name: str, package_path) -> None:
    for module in pkgutil.iter_modules(package_path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")
