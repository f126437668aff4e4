"""Makes the virtualenv fixture: a real venv (no pip) of the Toil interpreter's Python, whose
site-packages reaches Toil through a .pth file, so that its own python can run Toil's leader.
"""

import os
import sysconfig
import venv

from toil_common import emit, spec

import toil

target = spec()["dir"]
venv.EnvBuilder(with_pip=False).create(target)
purelib = sysconfig.get_path("purelib", vars={"base": target, "platbase": target})
toil_site_packages = os.path.dirname(os.path.dirname(os.path.abspath(toil.__file__)))
with open(os.path.join(purelib, "_toil_for_tests.pth"), "w") as pth:
    pth.write(toil_site_packages + "\n")
emit({"sitePackages": os.path.relpath(purelib, target), "toilSitePackages": toil_site_packages})
