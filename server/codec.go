package server

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonCodec is Connect's JSON codec with zero values emitted: the original function always sent
// all seven response fields, and the Swift client decodes them strictly. The proto's json_name
// options already make the names snake_case.
type jsonCodec struct{ name string }

func (c jsonCodec) Name() string { return c.name }

func (c jsonCodec) Marshal(msg any) ([]byte, error) {
	m, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("marshal %T: not a proto message", msg)
	}
	return protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true}.Marshal(m)
}

func (c jsonCodec) Unmarshal(data []byte, msg any) error {
	m, ok := msg.(proto.Message)
	if !ok {
		return fmt.Errorf("unmarshal into %T: not a proto message", msg)
	}
	if len(data) == 0 {
		return fmt.Errorf("unmarshal into %T: empty body, want a JSON object", msg)
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
}
