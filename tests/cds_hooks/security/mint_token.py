"""Print a fresh CDS Hooks client JWT for $CDS_CHECK_AUD (the checker's --token-cmd).

python mint_token.py KEY.pem ISSUER KID
"""

import os
import sys
import time
import uuid

import jwt


def main() -> int:
    key_file, issuer, kid = sys.argv[1:4]
    with open(key_file, "rb") as handle:
        key = handle.read()
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": os.environ["CDS_CHECK_AUD"],
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    print(jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
