package engine

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aion-dispatch/dispatch/internal/jsonform"
)

// ErrPayloadNotJSON is what [Payload.Check] reports for a payload whose
// content type says JSON but whose data is not.
var ErrPayloadNotJSON = errors.New("the content type says JSON but the data is not JSON")

// Check reports whether p is what its content type says, as far as the
// engine can tell: data under application/json or a +json type must be
// JSON (scripts decode it, and the journal embeds it as JSON).
func (p Payload) Check() error {
	if len(p.Data) > 0 && jsonform.IsJSONContentType(p.ContentType) && !json.Valid(p.Data) {
		return fmt.Errorf("%w (content type %s)", ErrPayloadNotJSON, p.ContentType)
	}
	return nil
}
