"""The deployment guide and its example service files stay in step with the code."""

import configparser
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands

from project import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "project" / "docs" / "deploy"
GUIDE = ROOT / "project" / "docs" / "deployment.md"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
# Commands the examples run that another part of Taskyard provides (merged separately).
PROVIDED_ELSEWHERE = {"runjobs"}


def read_unit(path: Path) -> configparser.ConfigParser:
    # systemd's format is INI-like; strict=False because it allows repeated keys.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path)
    return parser


def commands_in(command_line: str) -> list[list[str]]:
    """Split a shell line into its simple commands (on && and ;)."""
    parts = re.split(r"\s*(?:&&|;)\s*", command_line)
    return [shlex.split(part) for part in parts if part.strip()]


def check_command(argv: list[str]) -> None:
    """A manage.py command must exist; a uvicorn line must name our app and real options."""
    while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]) or argv[:1] == ["exec"]:
        argv = argv[1:]
    program = Path(argv[0]).name
    if program.startswith("python"):
        assert argv[1] == "manage.py", argv
        assert argv[2] in get_commands() or argv[2] in PROVIDED_ELSEWHERE, argv
    elif program == "uvicorn":
        from uvicorn import main as uvicorn_command  # the click command behind `uvicorn`

        assert argv[1] == "project.asgi:application"
        known = {
            opt for param in uvicorn_command.params for opt in param.opts + param.secondary_opts
        }
        used = {arg for arg in argv[2:] if arg.startswith("--")}
        assert used <= known, used - known
    else:
        assert program in {"rm", "mkdir"}, argv


def test_there_are_web_executor_and_prune_units():
    names = {path.name for path in UNITS}
    assert {
        "taskyard-web@.service",
        "taskyard-executor@.service",
        "taskyard-prune.service",
    } <= names


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_units_parse_and_run_real_commands(path):
    unit = read_unit(path)
    assert unit.get("Unit", "Description")
    service = unit["Service"]
    assert service["User"] == "taskyard"
    assert service["EnvironmentFile"] == "/etc/taskyard/taskyard.env"
    assert service["WorkingDirectory"] == "/srv/taskyard"
    for argv in commands_in(service["ExecStart"]):
        check_command(argv)
    if service.get("Type") != "oneshot":
        assert service["Restart"] == "always"
        assert "multi-user.target" in unit["Install"]["WantedBy"]


def test_prune_timer_starts_the_prune_service_nightly():
    timer = read_unit(DEPLOY / "systemd" / "taskyard-prune.timer")
    assert (DEPLOY / "systemd" / timer["Timer"]["Unit"]).exists()
    assert timer["Timer"]["OnCalendar"]
    assert timer["Timer"]["Persistent"] == "true"
    prune = read_unit(DEPLOY / "systemd" / "taskyard-prune.service")
    assert "prune_history" in prune["Service"]["ExecStart"]


def test_procfile_has_release_web_and_executor_with_real_commands():
    entries = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        assert re.fullmatch(r"[a-z]+", name), line
        assert name not in entries, f"duplicate process type {name}"
        entries[name] = command.strip()
    assert set(entries) == {"release", "web", "executor"}
    assert "$PORT" in entries["web"]
    assert "migrate" in entries["release"] and "collectstatic" in entries["release"]
    for command in entries.values():
        for argv in commands_in(command):
            check_command(argv)


def settings_environment_variables() -> set[str]:
    source = (ROOT / "project" / "settings.py").read_text()
    return set(
        re.findall(r"(?:environ\.get|environ\[|env_bool|env_list)\(?\s*\"([A-Z_]+)\"", source)
    )


def test_every_environment_variable_in_settings_is_documented():
    guide = GUIDE.read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", guide, flags=re.MULTILINE))
    missing = settings_environment_variables() - documented
    assert not missing, f"add these to project/docs/deployment.md section 3: {sorted(missing)}"


def test_example_environment_file_uses_only_known_variables():
    example = (DEPLOY / "taskyard.env.example").read_text()
    names = set(re.findall(r"^#?\s*([A-Z_]+)=", example, flags=re.MULTILINE))
    assert {"DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS"} <= names
    assert names <= settings_environment_variables()


def test_every_taskyard_metric_is_documented(db, settings):
    settings.TASKYARD_METRICS_FIRST_WAIT_SECONDS = None
    metrics.snapshots.invalidate()
    exposition = metrics.exposition().decode()
    metrics.snapshots.invalidate()
    exported = set(re.findall(r"^# TYPE (taskyard_\w+) ", exposition, flags=re.MULTILINE))
    assert len(exported) >= 15
    guide = GUIDE.read_text()
    for name in exported:
        documented = f"`{name}`"
        assert documented in guide, f"{documented} missing from the deployment guide, section 7"


def test_guide_links_point_at_existing_files():
    for target in re.findall(r"\]\((deploy/[^)#]+)\)", GUIDE.read_text()):
        assert (GUIDE.parent / target).exists(), target


def test_metrics_of_several_processes_add_up_in_multiprocess_mode(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR, a scrape of one process shows the others' counts too."""
    code = (
        "import django; django.setup(); from project import metrics; "
        "metrics.record_job_run('report.build', 'succeeded', 0.1)"
    )
    env = os.environ | {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unmigrated.sqlite3'}",
        "LOG_LEVEL": "CRITICAL",
    }
    (tmp_path / "metrics").mkdir()
    for _ in range(2):  # two separate processes record one run each
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    scrape = (
        "import django; django.setup(); from project import metrics; "
        "print(metrics.exposition().decode())"
    )
    output = subprocess.run(
        [sys.executable, "-c", scrape],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = 'taskyard_job_run_duration_seconds_count{handler="report.build",outcome="succeeded"}'
    assert f"{line} 2.0" in output
    # The backlog of an unusable database is reported as such, not as a crash.
    assert "taskyard_backlog_up 0.0" in output
