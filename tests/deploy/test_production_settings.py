"""Production settings pass Django's deployment checks exactly (TESTPLAN K1); the placeholder key does not."""

import json
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
    # Exactly this line: no warning of any level, and nothing silenced (SILENCED_SYSTEM_CHECKS is empty;
    # README "Secrets, headers and supply chain" would list any with its reason).
    assert result.stdout == "System check identified no issues (0 silenced).\n"


def test_a_deployment_that_forgets_its_secret_key_fails_the_check():
    result = check_deploy(DEBUG="0", SPENDWATCH_HTTPS="1", ALLOWED_HOSTS="spend.example.com")
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_production_settings_send_the_security_headers_and_keep_no_check_silenced():
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env={
            **{key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG"}},
            "DJANGO_SETTINGS_MODULE": "spendwatch.settings",
            "DEBUG": "0",
            "SPENDWATCH_HTTPS": "1",
            "SECRET_KEY": secrets.token_urlsafe(50),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": False,
        "SILENCED_SYSTEM_CHECKS": [],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
        "csp_middleware": True,
    }


PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
names = ["DEBUG", "SILENCED_SYSTEM_CHECKS", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE",
         "CSRF_COOKIE_SECURE", "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS"]
values = {name: getattr(settings, name) for name in names}
values["csp_middleware"] = "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE
print(json.dumps(values))
"""
