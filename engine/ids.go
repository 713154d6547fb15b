package engine

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
)

// SequenceIDs hands out Prefix+"1", Prefix+"2", …, for tests and goldens
// that need ids they can predict. It is safe for concurrent use.
type SequenceIDs struct {
	Prefix string
	n      atomic.Uint64
}

// NextConversationID implements [IDSource].
func (s *SequenceIDs) NextConversationID() string {
	return s.Prefix + strconv.FormatUint(s.n.Add(1), 10)
}

// RandomIDs hands out 128-bit random ids as 32 hex digits, unique across
// processes that append to one journal. It is the dispatcher's default.
type RandomIDs struct{}

// NextConversationID implements [IDSource].
func (RandomIDs) NextConversationID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}
