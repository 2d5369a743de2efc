package httpapi_test

import "crypto/sha256"

func sha(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
