"""Keeps secrets out of trace files, spans and anything printed: one object, every output.

Every value that leaves the process passes through one :class:`Redactor` (usually inside a
:class:`~pflow_trace.observe.sanitize.Sanitizer`). Its rules, documented in
``docs/security.md``:

- **By key.** A value stored under a key that names a secret becomes ``"<redacted>"`` at any
  depth. Keys are compared case- and separator-insensitively (``X-Api-Key``, ``api_key`` and
  ``APIKEY`` are one name), and users add regexes of their own.
- **By value.** Every leaf string and number of a sensitive input, and every value a key rule
  hid anywhere in the run, is learned; from then on each occurrence inside any string is
  hidden too (a raw HTTP body, a command's stdout, an error message). Values shorter than
  :data:`MIN_SECRET_CHARS` are not learned, so ``0``, ``true`` and ``"ok"`` stay readable;
  the API keys the run holds are learned whatever their length (:meth:`Redactor.learn_given`).
- **In text.** URL passwords (``https://user:pass@host``) and the values of secret-named pairs
  (``?token=…``, ``api_key=…``, ``"password": "…"``, ``Authorization: Bearer …``); after an
  unquoted ``name:`` only a value shaped like a secret, since prose reads the same way
  (``/etc/passwd: not JSON``).

Learning is thread-safe and cheap: the known values are kept as one immutable tuple, replaced
whole when a value is learned, so readers never lock and a run that learns nothing pays
nothing for it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from pflow_trace.errors import UsageError

REDACTED = "<redacted>"

#: Shorter strings and numbers are never hidden by value (they would hide ``0``, ``true``).
MIN_SECRET_CHARS = 4
#: A run learns at most this many distinct values; beyond it values are hidden by key only.
MAX_LEARNED_VALUES = 2000

#: Words that make a key name a secret, in normalised form (lower case, no ``-_ .``); a key
#: whose normalised form contains one of them is secret.
SECRET_KEY_WORDS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "authorization", "cookie",
    "privatekey", "credential", "sessionid",
)  # fmt: skip
#: ``token`` not followed by these is a secret: ``max_tokens``, ``total_tokens`` (LLM usage
#: counts), ``tokenizer`` and ``token_type`` are everywhere in model and OAuth responses, and
#: hiding them would teach the run to hide ordinary numbers and words.
_NOT_A_TOKEN = ("s", "iz", "type")
_SECRET_KEY = re.compile(
    "|".join(
        f"token(?!{'|'.join(_NOT_A_TOKEN)})" if word == "token" else word
        for word in SECRET_KEY_WORDS
    )
)
_SEPARATORS = str.maketrans("", "", "-_ .")

#: The environment variable with extra key regexes, comma-separated.
ENV_REDACT_KEYS = "PFLOW_TRACE_REDACT_KEYS"


def normalise_key(key: str) -> str:
    """``X-Api-Key`` → ``xapikey``: how keys are compared with :data:`SECRET_KEY_WORDS`."""
    return key.lower().translate(_SEPARATORS)


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a key names a secret by the built-in words (case and separators ignored)."""
    return _SECRET_KEY.search(normalise_key(key)) is not None


def compile_key_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """The user's key regexes as one case-insensitive pattern; a bad one is a UsageError."""
    checked: list[str] = []
    for pattern in patterns:
        if not pattern:
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--redact-key {pattern!r} is not a valid regex: {exc}") from None
        checked.append(f"(?:{pattern})")
    return re.compile("|".join(checked), re.IGNORECASE) if checked else None


def key_patterns_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``PFLOW_TRACE_REDACT_KEYS=ssn,^x-internal-`` → ``("ssn", "^x-internal-")``."""
    raw = (os.environ if environ is None else environ).get(ENV_REDACT_KEYS, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _scalar_text(value: Any, numbers: bool) -> str | None:
    """The text under which a leaf is learned, or None when it is not learned."""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def leaf_values(value: Any, numbers: bool = True) -> list[str]:
    """Every leaf string (and number, if ``numbers``) of a JSON-like value, as text.

    A string with blanks around it is learned both ways: a command's ``stdout`` ends in a
    newline, and the same token interpolated elsewhere usually does not.
    """
    found: list[str] = []
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, Mapping):
            stack.extend(current.values())
        elif isinstance(current, (list, tuple)):
            stack.extend(current)
        else:
            text = _scalar_text(current, numbers)
            if text is None:
                continue
            found.append(text)
            stripped = text.strip()
            if stripped != text:
                found.append(stripped)
    return found


class Redactor:
    """Redacts by key name, by known secret values and in URLs; learns as the run goes."""

    __slots__ = (
        "_extra_keys",
        "_key_cache",
        "_lock",
        "_longest_first",
        "_values",
        "secret_root_keys",
        "version",
    )

    def __init__(
        self,
        secret_values: Iterable[Any] = (),
        key_patterns: Iterable[str] = (),
        secret_root_keys: Iterable[str] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        #: The same values, longest first (so a secret inside a longer one is not cut out of
        #: it first); replaced whole on every change, so readers need no lock.
        self._longest_first: tuple[str, ...] = ()
        #: Bumped whenever a value is learned; compare it to see whether anything was.
        self.version = 0
        self._extra_keys = compile_key_patterns(key_patterns)
        self._key_cache: dict[str, bool] = {}
        #: Store keys hidden at the root whatever their name (the sensitive inputs' names).
        self.secret_root_keys = frozenset(secret_root_keys)
        self.learn([leaf for value in secret_values for leaf in leaf_values(value)])

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process needs: everything but the lock, which cannot be pickled."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        for name, value in state.items():
            setattr(self, name, value)

    # -- learning ------------------------------------------------------------------------------

    def learn(self, texts: Iterable[str]) -> None:
        """Hide each text (of at least :data:`MIN_SECRET_CHARS` characters) wherever it shows."""
        self._learn(texts, MIN_SECRET_CHARS)

    def learn_given(self, texts: Iterable[str]) -> None:
        """Hide secrets the run was handed (API keys), whatever their length.

        :meth:`learn`'s floor is for values guessed to be secret, where hiding every ``0`` would
        harm; a key the run holds is one for certain, however short.
        """
        self._learn(texts, 1)

    def _learn(self, texts: Iterable[str], min_chars: int) -> None:
        fresh = [
            text
            for text in texts
            if len(text) >= min_chars
            and text not in self._values
            and REDACTED not in text
            and text not in REDACTED  # "dact" would re-open every marker already written
        ]
        if not fresh:
            return
        with self._lock:
            room = MAX_LEARNED_VALUES - len(self._values)
            added = [text for text in dict.fromkeys(fresh) if text not in self._values][:room]
            if added:
                self._values.update(added)
                self._longest_first = tuple(sorted(self._values, key=len, reverse=True))
                self.version += 1

    def learn_hidden(self, value: Any) -> None:
        """Learn a value a key rule hid: its strings, and itself when it is a number.

        ``Bearer abc…`` is learned with and without its scheme: the token travels alone too.
        """
        texts = leaf_values(value, numbers=not isinstance(value, (Mapping, list, tuple)))
        for text in list(texts):
            scheme = _AUTH_SCHEME.match(text)
            if scheme is not None:
                texts.append(text[scheme.end() :])
        self.learn(texts)

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Every value hidden by value, longest first."""
        return self._longest_first

    # -- keys ----------------------------------------------------------------------------------

    def is_secret_key(self, key: str) -> bool:
        """A key hidden by name: a built-in word, or one of the user's regexes."""
        known = self._key_cache.get(key)
        if known is None:
            known = is_secret_key(key) or (
                self._extra_keys is not None and self._extra_keys.search(key) is not None
            )
            self._key_cache[key] = known
        return known

    def is_secret_root_key(self, key: str) -> bool:
        """A store key hidden at the root: a secret name, or a sensitive input's name."""
        return key in self.secret_root_keys or self.is_secret_key(key)

    # -- values --------------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """``text`` with every known secret value, URL password and secret pair hidden.

        One C-speed substring test per known value: for literals this beats a regex
        alternation by several times (measured), and nothing is compiled when values are
        learned one at a time while a run goes on.
        """
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _scrub_marked_secrets(text, self) if len(text) > 4 else text

    def is_secret_number(self, value: Any) -> bool:
        """True for a number equal to a secret value (a sensitive numeric input, e.g. a PIN)."""
        return (
            bool(self._values)
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and str(value) in self._values
        )

    def value(self, value: Any) -> Any:
        """A redacted copy of a JSON-like value (dicts, lists, strings); others unchanged.

        When the copy taught the redactor something (a token under ``access_token``), it is
        made again, so the same token elsewhere in the value (a raw body) is hidden too.
        """
        version = self.version
        redacted = self._value(value)
        return self._value(value) if self.version != version else redacted

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            copy: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and self.is_secret_key(key):
                    self.learn_hidden(item)
                    copy[key] = REDACTED
                else:
                    copy[key] = self._value(item)
            return copy
        if isinstance(value, (list, tuple)):
            return [self._value(item) for item in value]
        if self.is_secret_number(value):
            return REDACTED
        return value

    def strings(self, value: Any) -> Any:
        """Hide known values in every string of an already-redacted document, keys untouched.

        For the trace document at the end of a run: values learned late are hidden in what was
        recorded before, while the document's own keys and numbers (ids, times) stay as they are.
        """
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.strings(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.strings(item) for item in value]
        return value


# -- secrets the text itself marks -------------------------------------------------------------

#: Pairs (``name=value``, ``name: value``) are looked at only when the text has one of these.
_STEMS = (
    "pass", "pwd", "secret", "token", "key", "auth", "cookie", "sig", "session", "jwt",
    "credential", "private",
)  # fmt: skip
#: Short parameter names that are secrets in URLs and forms, beyond the key words.
SECRET_PARAM_NAMES = frozenset(
    {"key", "sig", "sign", "signature", "auth", "pass", "pwd", "jwt", "session"}
)
#: A value found in text is learned only when at least this long: ``key=name`` in prose must
#: not teach the run to hide every ``name``.
MIN_LEARNED_FROM_TEXT_CHARS = 8

_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:?#]*:)(?P<password>[^\s/@?#]+)@"
)
_ANY_STEM = re.compile("|".join(_STEMS), re.IGNORECASE)
_NAME = r"[A-Za-z0-9_.-]*(?:" + "|".join(_STEMS) + r")[A-Za-z0-9_.-]*"
_PAIR_SOURCE = (
    r"(?<![A-Za-z0-9_.-])(?P<quote>[\"']?)(?P<name>" + _NAME + r")(?P=quote)"
    r"(?P<sep>=|[ \t]*:[ \t]*)"
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
    r"|(?:(?:bearer|basic|token|digest)[ \t]+)?[^\s&#\"'<>,;)}\]]+)"
)


@lru_cache(maxsize=1)
def _pair_pattern() -> re.Pattern[str]:
    """Compiled on first use: most runs never print a secret-named pair."""
    return re.compile(_PAIR_SOURCE, re.IGNORECASE)


_AUTH_SCHEME = re.compile(r"(?i)(bearer|basic|token|digest)[ \t]+")


def _scrub_marked_secrets(text: str, redactor: Redactor) -> str:
    """Hide URL passwords and the values of secret-named pairs; learn the long ones."""
    if "@" in text and "://" in text:
        text = _USERINFO.sub(lambda match: _hide_password(match, redactor), text)
    # Cheap tests first: most strings (ids, file names, prose) have no pair at all.
    if ("=" in text or ":" in text) and _ANY_STEM.search(text) is not None:
        text = _pair_pattern().sub(lambda match: _hide_pair(match, redactor), text)
    return text


def _hide_password(match: re.Match[str], redactor: Redactor) -> str:
    password = match.group("password")
    if password != REDACTED:
        redactor.learn([password])
    return f"{match.group('head')}{REDACTED}@"


def _hide_pair(match: re.Match[str], redactor: Redactor) -> str:
    whole, name, value = match.group(0), match.group("name"), match.group("value")
    if normalise_key(name) not in SECRET_PARAM_NAMES and not redactor.is_secret_key(name):
        return whole
    quote = value[0] if len(value) > 1 and value[0] in "\"'" and value[-1] == value[0] else ""
    inner = value[1:-1] if quote else value
    scheme = _AUTH_SCHEME.match(inner) if not quote else None
    if scheme is not None:
        inner = inner[scheme.end() :]
    if not inner or inner == REDACTED:
        return whole
    if not quote and scheme is None and not _shaped_like_a_secret(inner, match.group("sep")):
        return whole
    if len(inner) >= MIN_LEARNED_FROM_TEXT_CHARS:
        redactor.learn([inner])
    kept = whole[: match.start("value") - match.start()] + quote
    return kept + (scheme.group(0) if scheme is not None else "") + REDACTED + quote


#: Characters that prose rarely puts inside a word and keys and passwords often do.
_SECRET_MARKS = frozenset("0123456789_+/=~!@#$%^&*")
#: An all-letter value after ``name:`` at least this long is taken for a passphrase.
MIN_PASSPHRASE_CHARS = 16


def _shaped_like_a_secret(value: str, separator: str) -> bool:
    """Whether an unquoted pair value looks like a credential, not the words after a name.

    After ``=`` any value with a letter or digit counts. ``name: value`` is also how prose
    reads (``/etc/passwd: not JSON``, jq's ``{key: .a}``): there the value must start with a
    letter or digit and carry a digit, an inner capital or a mark, or be a passphrase.
    """
    if separator == "=":
        return any(char.isalnum() for char in value)
    if len(value) < MIN_SECRET_CHARS or not value[0].isalnum():
        return False
    if len(value) >= MIN_PASSPHRASE_CHARS or any(char.isupper() for char in value[1:]):
        return True
    return not _SECRET_MARKS.isdisjoint(value)


def redact_message(message: str) -> str:
    """A message with URL passwords and secret pairs hidden (for error lines outside a run)."""
    return Redactor().text(message)
