"""The code check's child interpreter (config.code_check), without Ray running: one child answers every
request about the same code, a change to the code gets a fresh child that imports the new code, what the code
prints never reaches the answers, a child that dies is one line with its last words, and the child is gone
when the process that asked exits."""
from __future__ import annotations

import json
import subprocess
import sys

from rayserve_pulumi.config import code_check
from rayserve_pulumi.config.validate import validate_stack
from rayserve_pulumi.node_agent import procs
from tests.config.test_own_apps import echo, edit_config, errors_of, project, values  # noqa: F401 (fixture)
from tests.pulumi_harness import ROOT


def _child_pid(project) -> int:
    return code_check._CHECKERS[str((project / "src").resolve())].proc.pid


def test_one_child_answers_every_request_about_the_same_code(project):
    validate_stack(values(project), project)
    pid = _child_pid(project)
    edit_config(project, lambda c: echo(c)["user_config"].update(max_length=0))  # another config, same code
    assert any("max_length" in line for line in errors_of(values(project), project))
    edit_config(project, lambda c: echo(c)["user_config"].update(max_length=90))
    _, config = validate_stack(values(project), project)
    assert echo(config)["user_config"]["max_length"] == 90
    assert _child_pid(project) == pid


def test_changed_code_gets_a_fresh_child_that_imports_it(project):
    validate_stack(values(project), project)
    old = _child_pid(project)
    module = project / "src" / "shop" / "echo.py"
    module.write_text(module.read_text().replace("max_length: int = Field(100, ge=1,", "max_length: int = Field(100, ge=90,"))
    assert any("max_length" in line for line in errors_of(values(project), project))  # 80 is now too small
    assert _child_pid(project) != old
    assert not procs.members(old)  # the old child's session (it leads its own) is gone


def test_what_the_code_prints_stays_out_of_the_answers(project):
    module = project / "src" / "shop" / "echo.py"
    module.write_text('print("{not json")\nimport os\nos.write(1, b"raw bytes\\n")\n' + module.read_text())
    _, config = validate_stack(values(project), project)
    assert config["applications"][0]["import_path"] == "shop.echo:app"


def test_a_child_that_dies_is_one_line_with_its_last_words_and_the_next_check_gets_a_new_one(project):
    module = project / "src" / "shop" / "echo.py"
    good = module.read_text()
    module.write_text('import os, sys\nsys.stderr.write("the greeting table is gone\\n")\nsys.stderr.flush()\n'
                      'os._exit(3)\n' + good)
    lines = errors_of(values(project), project)
    assert lines == [f"serve config: the code check of {(project / 'src').resolve()} failed: the greeting table is gone"]
    module.write_text(good)
    validate_stack(values(project), project)


def test_the_child_is_gone_when_the_process_that_asked_exits(project):
    script = ("import json, sys\n"
              "from pathlib import Path\n"
              "from rayserve_pulumi.config import code_check, read_stack_file\n"
              "from rayserve_pulumi.config.validate import validate_stack\n"
              "project = Path(sys.argv[1])\n"
              "validate_stack(read_stack_file(project / 'Pulumi.local.yaml'), project)\n"
              "print(json.dumps([c.proc.pid for c in code_check._CHECKERS.values()]))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(project)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pids = json.loads(proc.stdout)
    assert len(pids) == 1 and not procs.members(pids[0])

