"""An independent implementation of ccr's local sealing, for tests.

The envelope is the seed's (seed-spec §6): {"version":"v2-envelope",
"encryptedDek","iv","authTag","encryptedData"}, AES-256-GCM with no AAD.
With the local key, encryptedDek is 61 bytes: 0x01, a 12-byte IV, the DEK
encrypted under the key with AAD "ccr-local-dek-v1", and the 16-byte tag.
The key file holds 64 hex digits and a newline, mode 0600.
"""
import base64
import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

WRAP_AAD = b"ccr-local-dek-v1"


def make_key(path):
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def read_key(path):
    with open(path) as f:
        return bytes.fromhex(f.read().strip())


def seal(key, plaintext):
    dek, iv, wiv = os.urandom(32), os.urandom(12), os.urandom(12)
    wrapped = b"\x01" + wiv + AESGCM(key).encrypt(wiv, dek, WRAP_AAD)
    ct = AESGCM(dek).encrypt(iv, plaintext, None)
    b64 = lambda b: base64.b64encode(b).decode()
    return ('{"version":"v2-envelope","encryptedDek":"%s","iv":"%s","authTag":"%s","encryptedData":"%s"}'
            % (b64(wrapped), b64(iv), b64(ct[-16:]), b64(ct[:-16]))).encode()


def open_envelope(key, blob):
    env = json.loads(blob)
    assert env["version"] == "v2-envelope"
    w = base64.b64decode(env["encryptedDek"])
    assert len(w) == 61 and w[0] == 1
    dek = AESGCM(key).decrypt(w[1:13], w[13:], WRAP_AAD)
    data = base64.b64decode(env["encryptedData"]) + base64.b64decode(env["authTag"])
    return AESGCM(dek).decrypt(base64.b64decode(env["iv"]), data, None)
