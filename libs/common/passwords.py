"""The password policy, in one place: the CLI (`user create`, `user password`) and the UI's
`POST /api/password` all ask `check_password`.

At least 12 characters and at most 128, not the account's email, and not common or easy to guess.
The last rule is zxcvbn's estimate (it bundles the most common leaked passwords, names and words,
and sees keyboard walks, dates, repeats and the user's own email in a password): a password it
scores below 3 of 4 would fall to a few billion guesses, which a stolen hash table survives only
briefly. No composition rules (digits, symbols): they make passwords harder to remember, not to
guess.
"""

from __future__ import annotations

from zxcvbn import zxcvbn  # type: ignore[import-untyped]

MIN_LENGTH = 12
MAX_LENGTH = 128  # a long phrase is welcome; a megabyte is someone testing the hasher
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable", about 10^10 guesses or more
ESTIMATE_CHARS = 72  # zxcvbn's own limit; its work grows quickly with the length


class WeakPassword(Exception):
    """A password the policy refuses. `rule` is a stable id (`min_length`, `max_length`,
    `not_email`, `too_common`); `reason` completes a sentence whose subject is the password."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def check_password(password: str, email: str = "") -> None:
    """Raise WeakPassword when the policy refuses `password` for the account `email`."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword("min_length", f"must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword("max_length", f"must have at most {MAX_LENGTH} characters")
    email = email.strip().casefold()
    if email and password.strip().casefold() in (email, email.partition("@")[0]):
        raise WeakPassword("not_email", "must not be the email address of the account")
    user_inputs = [email, *email.replace("@", ".").split(".")] if email else []
    estimate = zxcvbn(password[:ESTIMATE_CHARS], user_inputs=user_inputs)
    if int(estimate["score"]) < MIN_SCORE:
        warning = str(estimate["feedback"].get("warning") or "").rstrip(".")
        why = f" ({warning[:1].lower()}{warning[1:]})" if warning else ""
        raise WeakPassword(
            "too_common",
            f"is too common or too easy to guess{why}; use a longer phrase of uncommon words",
        )
