"""Unit tests for ``wirehub.auth.jwks.parse_jwks``: which entries of a key set become keys."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import OKPAlgorithm
from tests.jwks_server import jwk_of

from wirehub.auth.jwks import parse_jwks
from wirehub.errors import KeysUnavailable


@pytest.fixture(scope="module")
def rsa_jwk() -> dict[str, Any]:
    return jwk_of(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), "rsa-1")


def test_parse_jwks_keeps_rsa_ec_and_ed25519_signing_keys(rsa_jwk: dict[str, Any]) -> None:
    """RSA, EC (P-256/384/521) and OKP Ed25519 keys are kept under their kid, with their alg."""
    document = {
        "keys": [
            rsa_jwk | {"alg": "RS256", "use": "sig"},
            jwk_of(ec.generate_private_key(ec.SECP256R1()).public_key(), "ec-256"),
            jwk_of(ec.generate_private_key(ec.SECP521R1()).public_key(), "ec-521"),
            jwk_of(ed25519.Ed25519PrivateKey.generate().public_key(), "ed-1"),
        ]
    }
    keys = parse_jwks(document)
    assert set(keys) == {"rsa-1", "ec-256", "ec-521", "ed-1"}
    assert keys["rsa-1"].algorithm == "RS256"
    assert keys["ec-256"].algorithm is None
    assert isinstance(keys["rsa-1"].key, rsa.RSAPublicKey)
    assert isinstance(keys["ed-1"].key, ed25519.Ed25519PublicKey)


@pytest.mark.parametrize(
    "entry",
    [
        {"kty": "oct", "kid": "secret", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},
        {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
        "not an object",
        None,
    ],
)
def test_parse_jwks_skips_unusable_entries(entry: Any, rsa_jwk: dict[str, Any]) -> None:
    """Symmetric keys, broken keys, unknown curves and non-objects are skipped; the rest stays."""
    assert set(parse_jwks({"keys": [entry, rsa_jwk]})) == {"rsa-1"}


def test_parse_jwks_skips_ed448_keys() -> None:
    """Only Ed25519 serves EdDSA here; an Ed448 OKP key is skipped."""
    ed448_jwk = OKPAlgorithm.to_jwk(ed448.Ed448PrivateKey.generate().public_key(), as_dict=True)
    assert parse_jwks({"keys": [ed448_jwk | {"kid": "ed448"}]}) == {}


@pytest.mark.parametrize(
    "change",
    [
        {"kid": ""},
        {"kid": 7},
        {"use": "enc"},
        {"alg": 5},
        {"d": "private-exponent"},
    ],
)
def test_parse_jwks_skips_keys_without_kid_for_encryption_or_private(
    change: dict[str, Any], rsa_jwk: dict[str, Any]
) -> None:
    """No kid, a non-signing ``use``, a malformed ``alg`` or private material: the entry is skipped."""
    assert parse_jwks({"keys": [rsa_jwk | change]}) == {}


def test_parse_jwks_skips_entry_without_kid_member(rsa_jwk: dict[str, Any]) -> None:
    """A key without any ``kid`` cannot be selected by a token and is skipped."""
    entry = {k: v for k, v in rsa_jwk.items() if k != "kid"}
    assert parse_jwks({"keys": [entry]}) == {}


def test_parse_jwks_keeps_first_of_duplicate_kids(rsa_jwk: dict[str, Any]) -> None:
    """When two keys share a kid the first one wins, so a later entry cannot shadow it."""
    other = jwk_of(ed25519.Ed25519PrivateKey.generate().public_key(), "rsa-1")
    keys = parse_jwks({"keys": [rsa_jwk, other]})
    assert isinstance(keys["rsa-1"].key, rsa.RSAPublicKey)


@pytest.mark.parametrize("document", [[], {}, {"keys": {}}, {"keys": "x"}, "keys", None])
def test_parse_jwks_raises_keys_unavailable_when_not_a_key_set(document: Any) -> None:
    """A document without a ``keys`` list is not a key set: a temporary failure, not an empty set."""
    with pytest.raises(KeysUnavailable):
        parse_jwks(document)


def test_parse_jwks_returns_empty_when_key_list_empty() -> None:
    """An empty ``keys`` list is a valid (if useless) key set."""
    assert parse_jwks({"keys": []}) == {}
