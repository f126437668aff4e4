"""A pytest plugin that puts ``resource_rs`` under Toil before any test module is imported:
``pytest -p resource_rs.toil_plugin --pyargs toil.test.src.resourceTest``."""

import resource_rs

resource_rs.install()
