"""Unit: the one Redactor and the Sanitizer around it — keys, values, learning, text, previews."""

from __future__ import annotations

import threading

import pytest

from pflow_trace.errors import UsageError
from pflow_trace.observe.redaction import (
    MIN_SECRET_CHARS,
    REDACTED,
    Redactor,
    is_secret_key,
    key_patterns_from_env,
    leaf_values,
)
from pflow_trace.observe.sanitize import NO_PREVIEW, Sanitizer


@pytest.mark.parametrize(
    "key",
    [
        "api_key", "api-key", "X-Api-Key", "x_api_key", "APIKEY", "Authorization",
        "proxy-authorization", "Cookie", "set-cookie", "password", "DB_PASSWORD", "passwd",
        "secret", "client_secret", "token", "access_token", "refresh-token", "Private_Key",
        "private key", "credentials", "session_id", "get_token",
    ],
)  # fmt: skip
def test_secret_key_spellings_match(key: str) -> None:
    assert is_secret_key(key)
    assert Redactor().value({key: "v"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    [
        "user", "url", "host", "count", "monkey", "keyboard", "id", "author", "passenger",
        "max_tokens", "total_tokens", "tokens_used", "tokenizer", "token_type",
    ],
)  # fmt: skip
def test_ordinary_keys_do_not_match(key: str) -> None:
    assert not is_secret_key(key)


def test_user_patterns_add_keys_and_bad_ones_are_a_usage_error() -> None:
    redactor = Redactor(key_patterns=["^ssn$", "internal"])
    assert redactor.value({"SSN": "123-45-6789", "x-Internal-Id": "a", "ssn_note": "b"}) == {
        "SSN": REDACTED,
        "x-Internal-Id": REDACTED,
        "ssn_note": "b",
    }
    with pytest.raises(UsageError, match="not a valid regex"):
        Redactor(key_patterns=["("])
    assert key_patterns_from_env({"PFLOW_TRACE_REDACT_KEYS": " ssn, ^x-,, "}) == ("ssn", "^x-")


def test_every_leaf_of_a_sensitive_value_is_hidden_by_value() -> None:
    sensitive = [["item-one-11", "item-two-22"], {"a": {"b": "deep-leaf-33", "n": 987654}}]
    redactor = Redactor(sensitive)
    text = "item-one-11 item-two-22 deep-leaf-33 987654"
    assert redactor.text(text) == " ".join([REDACTED] * 4)
    assert redactor.value({"x": 987654, "y": [987654.5]}) == {"x": REDACTED, "y": [987654.5]}


def test_short_values_are_not_hidden_by_value() -> None:
    redactor = Redactor(["ok", 0, True, "abc", "abcd"])
    assert MIN_SECRET_CHARS == 4
    assert redactor.text("ok 0 true abc abcd") == f"ok 0 true abc {REDACTED}"
    assert redactor.value([0, True]) == [0, True]


def test_a_value_hidden_by_key_is_then_hidden_everywhere() -> None:
    redactor = Redactor()
    response = {"body": "welcome tok-learned-5511", "json": {"access_token": "tok-learned-5511"}}
    # The raw body comes before the parsed JSON, yet both are hidden in the same copy.
    assert redactor.value(response) == {
        "body": f"welcome {REDACTED}",
        "json": {"access_token": REDACTED},
    }
    assert redactor.text("stdout: tok-learned-5511\n") == f"stdout: {REDACTED}\n"
    plain = Redactor()
    assert plain.value({"raw": "abc tok-learned-9", "password": "tok-learned-9"}) == {
        "raw": f"abc {REDACTED}",
        "password": REDACTED,
    }


def test_urls_lose_passwords_and_secret_query_values() -> None:
    redactor = Redactor()
    url = "https://bob:pw-in-url@host:8443/p?token=t1&Key=k1&api_key=a1&sig=s1&page=2&monkey=3"
    assert redactor.text(f"cannot reach {url}: refused") == (
        f"cannot reach https://bob:{REDACTED}@host:8443/p?token={REDACTED}&Key={REDACTED}"
        f"&api_key={REDACTED}&sig={REDACTED}&page=2&monkey=3: refused"
    )
    assert redactor.text("http://host:8080/a@b") == "http://host:8080/a@b"
    assert redactor.text("exit code=1 at 12:30") == "exit code=1 at 12:30"


def test_secret_pairs_in_text_are_hidden() -> None:
    redactor = Redactor()
    assert redactor.text('{"password": "p-1", "n": 1}') == f'{{"password": "{REDACTED}", "n": 1}}'
    assert redactor.text("{'api_key': 'k-2'}") == f"{{'api_key': '{REDACTED}'}}"
    assert redactor.text("> Authorization: Bearer abc.def") == f"> Authorization: Bearer {REDACTED}"
    assert redactor.text("GITHUB_TOKEN=ghp_long_value_1") == f"GITHUB_TOKEN={REDACTED}"
    # A long value found in text is learned; a short one only hidden where it stands.
    assert redactor.text("echo ghp_long_value_1") == f"echo {REDACTED}"
    assert redactor.text("key=name and name") == f"key={REDACTED} and name"


def test_learning_from_many_threads_is_safe() -> None:
    redactor = Redactor()

    def learn(offset: int) -> None:
        for number in range(200):
            redactor.learn([f"secret-{offset}-{number}"])
            redactor.text(f"x secret-{offset}-{number} y")

    threads = [threading.Thread(target=learn, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(redactor.secret_values) == 800
    assert redactor.text("secret-3-199 secret-0-0") == f"{REDACTED} {REDACTED}"


def test_leaf_values_keep_a_stripped_copy_of_padded_strings() -> None:
    assert sorted(leaf_values({"stdout": "tok\n", "n": 5, "b": True})) == ["5", "tok", "tok\n"]
    assert leaf_values({"n": 5}, numbers=False) == []


def test_sanitizer_previews_can_be_switched_off() -> None:
    on = Sanitizer(Redactor(["secret-item-1"]))
    off = Sanitizer(Redactor(), previews=False)
    assert on.preview({"id": "secret-item-1", "token": "t"}) == (
        f'{{"id":"{REDACTED}","token":"{REDACTED}"}}'
    )
    assert off.preview("anything") == NO_PREVIEW
    assert off.preview(7) == NO_PREVIEW


def test_sanitizer_learns_like_the_redactor() -> None:
    sanitizer = Sanitizer(Redactor())
    output = {"body": "it is abc-learned-77", "json": {"refresh_token": "abc-learned-77"}}
    assert sanitizer.value(output) == {
        "body": f"it is {REDACTED}",
        "json": {"refresh_token": REDACTED},
    }
    assert sanitizer.text("again abc-learned-77") == f"again {REDACTED}"


def test_a_redactor_travels_to_a_worker_process_with_what_it_learned() -> None:
    """Batch items on the processes and dask executors redact with a pickled copy."""
    import pickle

    redactor = Redactor(["s3cr3t-value"])
    redactor.learn(["learned-later-secret"])
    copy = pickle.loads(pickle.dumps(redactor))
    assert copy.text("a s3cr3t-value and a learned-later-secret") == "a <redacted> and a <redacted>"
    copy.learn(["another-one-here"])  # the copy's own lock works
    assert copy.text("another-one-here") == "<redacted>"


def test_a_given_key_is_hidden_whatever_its_length_a_guessed_value_is_not() -> None:
    redactor = Redactor(["abc"])  # a sensitive leaf this short is not learned (it is "abc")
    assert redactor.text("id abc") == "id abc"
    redactor.learn_given(["k-4", ""])  # an API key the run holds is, however short
    assert redactor.text("id k-4, abc") == f"id {REDACTED}, abc"
    assert "" not in redactor.secret_values


@pytest.mark.parametrize(
    "text",
    [
        "error: /etc/passwd: not JSON (Expecting value at line 1 column 1)",
        "jq '{key: (.a | tostring)}' data.json",
        "jq '{key: .name, token: .id}'",
        "token: expired, secret: the thing, passwd: letmein",
        "key=( and token=)",
    ],
)
def test_words_after_a_secret_name_are_not_a_secret(text: str) -> None:
    redactor = Redactor()
    assert redactor.text(text) == text
    assert redactor.secret_values == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password: hunter2", f"password: {REDACTED}"),
        ("api_key: sk-abc123XYZ", f"api_key: {REDACTED}"),
        ("X-Api-Key: aBcDeFgHiJ", f"X-Api-Key: {REDACTED}"),
        ("passphrase: correcthorsebatterystaple", f"passphrase: {REDACTED}"),
        ("Authorization: Bearer plainword", f"Authorization: Bearer {REDACTED}"),
        ("password: 'letmein'", f"password: '{REDACTED}'"),
        ("password=letmein", f"password={REDACTED}"),
    ],
)
def test_a_value_shaped_like_a_secret_is_still_hidden(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected
