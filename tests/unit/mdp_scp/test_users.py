from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdp_scp import User, UserStore, hash_password, verify_password
from mdp_scp.passwords import ScryptParameters
from mdp_scp.users import UsersFileError

FAST = ScryptParameters(n=1 << 10)


def write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_users_load_from_a_file_and_authenticate(tmp_path: Path) -> None:
    users = [
        {"name": "ann", "role": "admin", "password_hash": hash_password("a-pass", FAST)},
        {"name": "bob", "role": "viewer", "password_hash": hash_password("b-pass", FAST)},
    ]
    store = UserStore.from_file(write(tmp_path / "users.json", users))
    assert len(store) == 2
    assert store.has_admin
    ann = store.check_password("ann", "a-pass")
    assert ann is not None
    assert ann.is_admin
    assert store.check_password("ann", "b-pass") is None
    assert store.check_password("nobody", "a-pass") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "x"}, "JSON list"),
        (["not an object"], "must be an object"),
        ([{"role": "admin", "password_hash": ""}], "needs a name"),
        ([{"name": "x", "role": "root", "password_hash": ""}], "role must be"),
        ([{"name": "x", "role": "admin", "password_hash": "plaintext"}], "scrypt"),
    ],
)
def test_a_bad_users_file_names_the_problem(tmp_path: Path, document: object, message: str) -> None:
    with pytest.raises(UsersFileError, match=message):
        UserStore.from_file(write(tmp_path / "users.json", document))


def test_an_unreadable_users_file_is_a_users_file_error(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot read"):
        UserStore.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(UsersFileError, match="not JSON"):
        UserStore.from_file(tmp_path / "bad.json")


def test_accounts_without_a_password_cannot_log_in_with_one() -> None:
    store = UserStore([User("sso-only", "viewer")])
    assert store.check_password("sso-only", "") is None
    assert store.check_password("sso-only", "anything") is None


async def test_authenticate_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import mdp_scp.users as users_module

    store = UserStore([User("ann", "viewer", hash_password("pw", FAST))])
    threads: list[int] = []
    real = verify_password

    def recording(password: str, stored: str) -> bool:
        threads.append(threading.get_ident())
        return real(password, stored)

    monkeypatch.setattr(users_module, "verify_password", recording)
    user = await store.authenticate("ann", "pw")
    assert user is not None
    assert user.name == "ann"
    assert threads
    assert threading.get_ident() not in threads
