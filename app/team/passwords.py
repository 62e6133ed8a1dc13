"""Password hashing with argon2-cffi: Argon2id with its library's current parameters (RFC 9106's
low-memory profile), which each hash records, so raising them later only rehashes at sign-in.

argon2-cffi directly rather than pwdlib: pwdlib is a thin front over the same library, and we
need one algorithm, not pwdlib's choice among several."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified when the email is unknown, so that a wrong email costs as long as a wrong password
# (the answer's timing does not tell which emails have accounts).
_DUMMY_HASH = _hasher.hash("no such user")

MIN_LENGTH = 8
MAX_LENGTH = 1024  # Argon2 takes any length; this bounds the work a request can ask for


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed (None: no user; still costs one verification)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
