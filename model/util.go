package model

import (
	"encoding/json"
)

// jsonCanonical encodes v with sorted map keys (encoding/json's default),
// after a round trip so that structs and maps of the same content agree.
func jsonCanonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return nil, err
	}
	return json.Marshal(generic)
}
