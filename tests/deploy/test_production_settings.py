"""Production settings pass Django's deployment checks; the development placeholder key does not."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG"}}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy():
    result = check_deploy(
        DEBUG="0",
        SPENDWATCH_HTTPS="1",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="spend.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_a_deployment_that_forgets_its_secret_key_fails_the_check():
    result = check_deploy(DEBUG="0", SPENDWATCH_HTTPS="1", ALLOWED_HOSTS="spend.example.com")
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr
