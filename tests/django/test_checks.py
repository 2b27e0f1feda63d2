"""``manage.py greenserve`` runs Django's system checks and reports unapplied migrations, as runserver does.

Both happen in the command's process, before it execs the greenserve master:
a check error stops it there (exit status 1, nothing served); warnings and
the migrations notice are printed and the server starts.
"""

from __future__ import annotations

import re

import pytest
import requests

from tests.django.conftest import build_project, run_manage

pytestmark = pytest.mark.timeout(120)

UNAPPLIED = re.compile(r"You have (\d+) unapplied migration\(s\)\. Your project may not work properly")


def test_a_new_project_hears_about_its_unapplied_migrations(manage_greenserve, tmp_path):
    project = build_project(tmp_path / "fresh")  # startproject, never migrated
    server = manage_greenserve("--noreload", cwd=project)
    line = server.wait_for(UNAPPLIED.pattern)
    assert int(UNAPPLIED.search(line).group(1)) > 0
    assert "admin, auth, contenttypes, sessions" in line
    server.wait_for(r"Run 'python manage\.py migrate' to apply them\.")
    assert "System check identified no issues (0 silenced)." in server.log
    # It is a notice, not a refusal: the project is served.
    assert requests.get(server.url + "/hello/", timeout=10).text == "hello v1"

    # After migrate (what the tutorial says to run first), the notice is gone.
    server.stop()
    migrated = run_manage(project, "migrate", "--noinput", "-v", "0")
    assert migrated.returncode == 0, migrated
    again = manage_greenserve("--noreload", cwd=project)
    assert "System check identified no issues (0 silenced)." in again.log
    assert not UNAPPLIED.search(again.log), again.log


def test_a_system_check_error_stops_the_command_before_the_server_starts(django_project):
    settings = django_project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + '\nSTATICFILES_DIRS = "static"  # must be a list\n')
    result = run_manage(django_project, "greenserve", "127.0.0.1:0", "--noreload", timeout=30)
    assert result.returncode == 1, result
    assert "SystemCheckError: System check identified some issues" in result.stderr
    assert "staticfiles.E001" in result.stderr
    assert "Starting greenserve" not in result.stdout + result.stderr


def test_skip_checks_serves_anyway(manage_greenserve, django_project):
    settings = django_project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + '\nSTATICFILES_DIRS = "static"  # must be a list\n')
    server = manage_greenserve("--noreload", "--skip-checks")
    assert "Performing system checks" not in server.log
    assert requests.get(server.url + "/hello/", timeout=10).text == "hello v1"
