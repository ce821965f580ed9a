from allauth.account.adapter import DefaultAccountAdapter


class NoSignupAccountAdapter(DefaultAccountAdapter):
    """Accounts are created by an administrator or the HR import, never by self sign-up."""

    def is_open_for_signup(self, request) -> bool:
        return False
