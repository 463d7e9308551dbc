package shm

import "strings"

// Matches reports whether key matches the key expression expr: chunks are
// separated by '/', '*' matches exactly one chunk and '**' any number of
// chunks (zero included), as in Zenoh.
func Matches(expr, key string) bool {
	return matchChunks(strings.Split(expr, "/"), strings.Split(key, "/"))
}

func matchChunks(e, k []string) bool {
	for len(e) > 0 {
		if e[0] == "**" {
			for i := 0; i <= len(k); i++ {
				if matchChunks(e[1:], k[i:]) {
					return true
				}
			}
			return false
		}
		if len(k) == 0 || (e[0] != "*" && e[0] != k[0]) {
			return false
		}
		e, k = e[1:], k[1:]
	}
	return len(k) == 0
}
