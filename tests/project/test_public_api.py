from __future__ import annotations

import inspect

import twinstar


def test_every_public_name_is_exported_and_documented() -> None:
    for name in twinstar.__all__:
        assert hasattr(twinstar, name), name
        value = getattr(twinstar, name)
        if name != "__version__":
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_public_classes_document_their_public_methods() -> None:
    for name in twinstar.__all__:
        value = getattr(twinstar, name)
        if not inspect.isclass(value):
            continue
        for attr, member in vars(value).items():
            if attr.startswith("_") or not inspect.isfunction(member):
                continue
            assert inspect.getdoc(member), f"{name}.{attr} has no docstring"
