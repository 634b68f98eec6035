"""API key material: format, keyed hash, constant-time check."""

from __future__ import annotations

from api.security import key_material as km

SECRET = "server-secret-for-tests"


def test_generated_keys_are_random_and_well_formed() -> None:
    keys = [km.generate(SECRET) for _ in range(50)]
    assert len({k.plaintext for k in keys}) == 50
    for key in keys:
        assert key.plaintext.startswith(f"omh_{key.prefix}_")
        assert km.parse_prefix(key.plaintext) == key.prefix
        assert len(key.plaintext.split("_", 2)[2]) >= 43  # 32 bytes of entropy


def test_only_the_keyed_hash_is_kept_and_it_depends_on_the_server_secret() -> None:
    key = km.generate(SECRET)
    assert key.plaintext not in key.key_hash and len(key.key_hash) == 64
    assert km.matches(SECRET, key.plaintext, key.key_hash)
    assert not km.matches("another-secret", key.plaintext, key.key_hash)
    assert km.hash_key("another-secret", key.plaintext) != key.key_hash


def test_a_changed_character_does_not_match() -> None:
    key = km.generate(SECRET)
    last = key.plaintext[-1]
    forged = key.plaintext[:-1] + ("A" if last != "A" else "B")
    assert not km.matches(SECRET, forged, key.key_hash)


def test_malformed_keys_have_no_prefix() -> None:
    for bad in [
        "",
        "omh_",
        "Bearer x",
        "omh_ABCDEFGH_" + "x" * 43,
        "omh_abcdefgh_short",
        "xyz_abcdefgh_" + "x" * 43,
        "omh_abcdefgh_" + "x" * 43 + "!",
    ]:
        assert km.parse_prefix(bad) is None
