package sqlite

import (
	"strconv"
	"strings"
)

func quote(s string) string { return strconv.Quote(s) }

func lower(s string) string { return strings.ToLower(s) }
