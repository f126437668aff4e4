"""A real Toil workflow (toil.job, the single-machine batch system) whose job functions live in a
user package, run with resource_rs put under Toil: Toil's machinery discovers, describes and
loads the user module through our ModuleDescriptor, on the leader and in its workers."""

import json
import os
import subprocess
import sys
import textwrap

JOBS = '''
import os
import sys

import resource_rs
import toil.job
import toil.resource


def where():
    """Which ModuleDescriptor this process's Toil uses, and through which this module came."""
    return {
        "pid": os.getpid(),
        "ours_under_toil": toil.resource.ModuleDescriptor is resource_rs.ModuleDescriptor
        and toil.job.ModuleDescriptor is resource_rs.ModuleDescriptor,
    }


def child(job, seen):
    return seen + [dict(where(), job="child", user_module=type(job.userFunctionModule).__module__)]


def root(job):
    seen = [dict(where(), job="root", user_module=type(job.userFunctionModule).__module__)]
    return job.addChildJobFn(child, seen).rv()
'''

DRIVER = '''
import json
import sys

import resource_rs

resource_rs.install()

from toil.common import Toil
from toil.job import Job

from flowpkg.jobs import root

options = Job.Runner.getDefaultOptions(sys.argv[1])
options.batchSystem = "single_machine"
options.logLevel = "WARNING"
options.clean = "always"
with Toil(options) as toil:
    job = Job.wrapJobFn(root)
    # The module of the job function, as Toil's function wrapper describes it.
    leader = {"job": "leader", "user_module": type(job.userFunctionModule).__module__,
              "descriptor": list(job.userFunctionModule)}
    seen = toil.start(job)
print(json.dumps({"leader": leader, "workers": seen}))
'''


def test_toil_workflow_runs_with_ours_under_toil(tmp_path):
    package = tmp_path / "src" / "flowpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(textwrap.dedent(JOBS))
    driver = tmp_path / "src" / "run_flow.py"
    driver.write_text(textwrap.dedent(DRIVER))
    # Toil starts its workers as `_toil_worker`, from the virtualenv's bin.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = dict(
        os.environ, PATH=path, PYTHONPATH=str(tmp_path / "src"), AWS_EC2_METADATA_DISABLED="true"
    )
    env.pop("RESOURCE_RS_UNDER_TOIL", None)
    done = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "jobstore")],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    leader = report["leader"]
    # The leader described the user module with our class.
    assert leader["user_module"] == "resource_rs._api"
    assert leader["descriptor"] == [str(tmp_path / "src"), "flowpkg.jobs", False]
    workers = report["workers"]
    assert [step["job"] for step in workers] == ["root", "child"]
    for step in workers:
        # Each worker process ran with ours under Toil and loaded the job through our class.
        assert step["ours_under_toil"] is True, step
        assert step["user_module"] == "resource_rs._api", step
    assert all(step["pid"] != os.getpid() for step in workers)
