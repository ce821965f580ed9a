"""Re-encrypt every stored provider credential with the first key of SPENDWATCH_CREDENTIAL_KEYS.

Rotation, step by step (README "Secrets, headers and supply chain"):
1. generate a key: `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`;
2. put it FIRST in SPENDWATCH_CREDENTIAL_KEYS, the old key after it, and restart web and workers;
3. run this command: it re-encrypts every credential with the new key (nothing is changed when one cannot be
   read: it stops, naming the source, before writing anything);
4. remove the old key from SPENDWATCH_CREDENTIAL_KEYS and restart again.
"""

import sys

import orjson
from django.core.management.base import BaseCommand

from apps.ingestion import pulls
from apps.ingestion.credentials import CredentialError


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored provider credential with the first (newest) key of "
        "SPENDWATCH_CREDENTIAL_KEYS; prints how many. Exit 2, changing nothing, if any cannot be decrypted."
    )
    requires_system_checks: list[str] = []

    def handle(self, *args, **options) -> None:
        try:
            count = pulls.credentials_reencrypt()
        except CredentialError as error:
            self.stderr.write(f"rotate_credential_keys: {error}; nothing was re-encrypted")
            sys.exit(2)
        self.stdout.write(orjson.dumps({"reencrypted": count}).decode())
