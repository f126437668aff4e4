"""Inputs shared by the tests of resource_rs (pytest puts this directory on sys.path)."""


def make_package(base):
    """A small package `pkg` under `base`, with a subpackage and a non-ASCII source line."""
    package = base / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("VALUE = 42\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("DEEP = 'é'\n")
    return package
