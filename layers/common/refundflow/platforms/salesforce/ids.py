"""Salesforce record ids: 15 characters (case-sensitive) or 18 (the 15 plus a three-character checksum of their
letters' case, so case-insensitive tools cannot confuse two ids). The first three characters are the object's key
prefix: ``500`` for Case, ``003`` for Contact, ``005`` for User, ``00G`` for a Group or Queue.

The checksum (Salesforce Help, "What is a Salesforce ID?" / the CASESAFEID() formula function): the 15 characters in
three blocks of five; each block's bit i is set when its i-th character is an upper-case letter A-Z; the bits
(0 to 31) pick one of ``A-Z0-5``. Whether every org's ids follow it is not checked here against a live org.
"""

from __future__ import annotations

import re

RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Z0-5]{3})?")
CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
CASE_PREFIX = "500"


def checksum(id15: str) -> str:
    """The three checksum characters of a 15-character id."""
    suffix = ""
    for block in range(3):
        bits = 0
        for position, character in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= character <= "Z":
                bits |= 1 << position
        suffix += CHECKSUM_ALPHABET[bits]
    return suffix


def record_id18(value: str, prefix: str | None = None) -> str | None:
    """``value`` as an 18-character id, or None: not 15/18 ASCII letters and digits, a wrong checksum, or (with
    ``prefix``) another object's id."""
    if not isinstance(value, str) or not RECORD_ID.fullmatch(value):
        return None
    id15 = value[:15]
    if prefix is not None and not id15.startswith(prefix):
        return None
    full = id15 + checksum(id15)
    if len(value) == 18 and value != full:
        return None
    return full


def case_id18(value: str) -> str | None:
    """A Case id (key prefix 500) as 18 characters, or None."""
    return record_id18(value, CASE_PREFIX)
