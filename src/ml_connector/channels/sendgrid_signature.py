"""SendGrid's signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body.

SendGrid signs each Event Webhook POST with the account's private key and sends

    X-Twilio-Email-Event-Webhook-Signature   base64 DER ECDSA signature
    X-Twilio-Email-Event-Webhook-Timestamp   the signing time, as sent (a Unix time string)

The signed bytes are the timestamp header's exact text followed by the exact body bytes
(trailing CRLF included), so the body must be verified before anything parses it. The public
key is the base64 DER SubjectPublicKeyInfo shown by "Get Signed Event Webhook's Public Key".
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "load_public_key", "verify_event_signature"]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The configured verification key; ValueError (saying what is wrong, not the key) otherwise."""
    try:
        der = base64.b64decode(text.strip(), validate=True)
        key = load_der_public_key(der)
    except (binascii.Error, ValueError):
        raise ValueError("not a base64 DER public key (copy it from SendGrid's Event Webhook settings)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the Event Webhook public key must be an ECDSA P-256 key")
    return key


def verify_event_signature(
    keys: tuple[ec.EllipticCurvePublicKey, ...], signature: str | None, timestamp: str | None, body: bytes
) -> bool:
    """True when one of `keys` signed `timestamp + body`. Missing or malformed headers are False."""
    if not signature or not timestamp or not keys:
        return False
    try:
        der = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    signed = timestamp.encode("utf-8") + body
    for key in keys:
        try:
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            continue
    return False
